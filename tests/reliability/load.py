"""A bounded HTTP load generator: N client threads hammering list URLs on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.reliability.harness import percentile


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    # Transport failures (refused, reset, timeout): requests that got no answer at all.
    errors: list[str] = field(default_factory=list)
    # A few non-200 answers, to show what went wrong.
    bad_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def bad(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + len(self.errors)

    def summary(self) -> dict[str, float | int]:
        ms = [x * 1000 for x in self.latencies]
        return {
            "requests": self.requests,
            "throughput_rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(percentile(ms, 50), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "max_ms": round(max(ms), 1) if ms else 0.0,
            "errors": self.bad,
        }


def run_load(base_url: str, paths: list[str], *, clients: int, seconds: float) -> LoadResult:
    """Each client loops over `paths` until `seconds` have passed; every request is timed."""
    result = LoadResult()
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(index: int) -> None:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        errors: list[str] = []
        samples: list[str] = []
        # One connection per client, kept alive, as a portal's HTTP client would.
        with httpx.Client(base_url=base_url, timeout=30) as http:
            start_gate.wait()
            i = index
            while time.monotonic() < stop_at[0]:
                path = paths[i % len(paths)]
                i += 1
                t0 = time.perf_counter()
                try:
                    response = http.get(path)
                    response.read()
                except httpx.HTTPError as exc:
                    errors.append(f"{path}: {exc!r}")
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[response.status_code] += 1
                if response.status_code != 200 and len(samples) < 5:
                    samples.append(f"{path}: HTTP {response.status_code} {response.text[:200]}")
        with lock:
            result.latencies.extend(latencies)
            result.statuses.update(statuses)
            result.errors.extend(errors)
            result.bad_samples.extend(samples)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + seconds
    began = time.monotonic()
    start_gate.wait()
    for t in threads:
        t.join(timeout=seconds + 60)
    result.seconds = time.monotonic() - began
    return result
