"""Run syncd's processes for fault injection: start, wait until ready, kill, read logs.

Each process is `python -m syncd.cli <role>` in a session of its own, so that a SIGKILL
reaches every process it forked (Dramatiq worker processes included), exactly as an OOM
killer or a lost node would. Its stdout/stderr go to a log file the test can search.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest

from tests.reliability.private_services import free_port
from tests.reliability.results import REPO_ROOT
from tests.support.services import unique_name


def syncd_env(
    *, database_url: str, broker_url: str = "", queue_name: str = "syncd", **settings: Any
) -> dict[str, str]:
    """The environment of a syncd process: ours minus any SYNCD_*, plus these settings.

    Keyword arguments are Settings field names (`min_backoff_ms=200`); values are turned
    into the strings load_settings() parses.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    values: dict[str, Any] = {
        "database_url": database_url,
        "broker_url": broker_url,
        "queue_name": queue_name,
        "log_format": "json",
        "log_level": "INFO",
        **settings,
    }
    for name, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        env["SYNCD_" + name.upper()] = text
    env["PYTHONUNBUFFERED"] = "1"
    return env


# Marks of a test that runs syncd processes against the real PostgreSQL and RabbitMQ.
PROCESS_TEST = (pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow)


def command_env(
    database_url: str, broker_url: str, prefix: str, **settings: Any
) -> tuple[str, dict[str, str]]:
    """(queue, env) for processes that run commands: a queue of the test's own; file:// and
    127.0.0.1 sources allowed (the suite's upstreams live there); quick retries."""
    queue = unique_name(prefix)
    values: dict[str, Any] = {
        "allow_file_sources": True,
        "allow_private_sources": True,
        "min_backoff_ms": 200,
        "max_backoff_ms": 2000,
        **settings,
    }
    env = syncd_env(database_url=database_url, broker_url=broker_url, queue_name=queue, **values)
    return queue, env


def event_time(event: Mapping[str, Any]) -> datetime:
    """When a JSON log event happened (its ISO timestamp, UTC)."""
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))


@dataclass
class SyncdProcess:
    """One `python -m syncd.cli ROLE ARGS...` process with its log file."""

    role: str
    env: Mapping[str, str]
    log_path: Path
    args: tuple[str, ...] = ()
    # tests.reliability.plugin runs syncd.cli with the suite's RelTest adapter registered.
    module: str = "syncd.cli"
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_offset: int = field(default=0)

    def start(self) -> SyncdProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start #{self.starts + 1} of syncd {self.role} ===\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, self.role, *self.args],
                env=dict(self.env),
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "process not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the role's children die with it)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
        # Children outliving their parent would keep consuming; make sure they are gone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def log_text(self, *, since_start: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        if since_start:
            data = data[self._log_offset :]
        return data.decode("utf-8", errors="replace")

    def wait_log(self, pattern: str, *, timeout: float, since_start: bool = True) -> re.Match[str]:
        """Wait for a regex in the log; fail early (with the log tail) if the process died."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text(since_start=since_start))
            if match:
                return match
            if not self.alive():
                raise AssertionError(
                    f"syncd {self.role} exited ({self.proc and self.proc.returncode}) before "
                    f"logging /{pattern}/:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"syncd {self.role} did not log /{pattern}/ in {timeout}s:\n{self.tail()}"
                )
            time.sleep(0.1)

    def events(self, name: str | None = None, *, since_start: bool = False) -> list[dict[str, Any]]:
        """The JSON log events (SYNCD_LOG_FORMAT=json), optionally only those named `name`."""
        found = []
        for line in self.log_text(since_start=since_start).splitlines():
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                found.append(event)
        return found

    def wait_event(
        self, name: str, *, timeout: float, count: int = 1, since_start: bool = True
    ) -> list[dict[str, Any]]:
        """Wait until the log holds `count` events called `name`; fail early if it died."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(name, since_start=since_start)
            if len(found) >= count:
                return found
            if not self.alive():
                raise AssertionError(
                    f"syncd {self.role} exited ({self.proc and self.proc.returncode}) before "
                    f"logging {count} x {name}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"syncd {self.role} logged {len(found)} of {count} x {name} in "
                    f"{timeout}s:\n{self.tail()}"
                )
            time.sleep(0.1)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def worker_process(
    env: Mapping[str, str], log_path: Path, *, threads: int = 1, module: str = "syncd.cli"
) -> SyncdProcess:
    """`syncd worker` as one process (no supervisor: a SIGKILL hits the consumer itself)."""
    args = ("--processes", "1", "--threads", str(threads))
    return SyncdProcess("worker", env, log_path, args=args, module=module)


@contextlib.contextmanager
def running(*procs: SyncdProcess) -> Iterator[tuple[SyncdProcess, ...]]:
    """Start the processes; stop them (and their process groups) however the block ends."""
    try:
        for proc in procs:
            if not proc.alive():
                proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def wait_until(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll until predicate() is truthy; return its value or fail after timeout."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except AssertionError:
            raise  # the predicate found a failure (a process died): no point waiting
        except Exception as exc:  # the thing polled may be restarting
            last_exc = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    suffix = f" (last error: {last_exc!r})" if last_exc else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}{suffix}")


# --- API process -----------------------------------------------------------------------


class ApiServer:
    """`syncd api` on a free port, with its base URL."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, *, module: str = "syncd.cli"
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process = SyncdProcess(
            "api",
            env,
            log_path,
            args=("--host", "127.0.0.1", "--port", str(self.port)),
            module=module,
        )

    def start(self, timeout: float = 60) -> ApiServer:
        self.process.start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if not self.process.alive():
                raise AssertionError(f"syncd api exited:\n{self.process.tail()}")
            try:
                r = httpx.get(f"{self.base_url}/api/marketplace-software-catalogs/", timeout=2)
            except httpx.HTTPError:
                return False
            return r.status_code < 500

        wait_until(ready, timeout=timeout, what="the API to answer")

    def stop(self) -> None:
        self.process.stop()


# --- RabbitMQ queue inspection ---------------------------------------------------------


def queue_state(amqp_url: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of a queue; (0, 0) if it does not exist yet."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = conn.channel()
        try:
            ok = channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return (0, 0)
        return (ok.method.message_count, ok.method.consumer_count)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def wait_consumers(amqp_url: str, queue: str, *, count: int = 1, timeout: float = 60) -> None:
    """Wait until a worker consumes the queue: the sign that it is ready for commands."""
    wait_until(
        lambda: queue_state(amqp_url, queue)[1] >= count,
        timeout=timeout,
        interval=0.3,
        what=f"{count} consumer(s) on queue {queue}",
    )


def drain_queue(amqp_url: str, queue: str, *, limit: int = 100_000) -> list[tuple[Any, bytes]]:
    """Take every ready message of a queue (acked); [(properties, body), ...]."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    taken: list[tuple[Any, bytes]] = []
    try:
        channel = conn.channel()
        try:
            channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return taken
        while len(taken) < limit:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            taken.append((props, body))
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return taken


# --- A reader polling the API throughout ----------------------------------------------


@dataclass
class Observation:
    at: float
    state: tuple[Any, ...]


class ApiPoller(threading.Thread):
    """Polls a catalog through the API until stopped; keeps every distinct state seen.

    `probe(client)` returns the state to record (say, the catalog's counts and the
    X-Result-Count of its package list) or raises when the API is unreachable; errors are
    counted, not fatal, because faults are being injected on purpose.
    """

    def __init__(
        self, base_url: str, probe: Callable[[httpx.Client], tuple[Any, ...]], interval: float
    ) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.probe = probe
        self.interval = interval
        self.observations: list[Observation] = []
        self.polls = 0
        self.errors = 0
        self.error_kinds: Counter[str] = Counter()
        self._stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self._stop_event.is_set():
                try:
                    state = self.probe(client)
                except httpx.HTTPStatusError as exc:
                    self.errors += 1
                    self.error_kinds[f"HTTP {exc.response.status_code}"] += 1
                except Exception as exc:
                    self.errors += 1
                    self.error_kinds[type(exc).__name__] += 1
                else:
                    self.polls += 1
                    if not self.observations or self.observations[-1].state != state:
                        self.observations.append(Observation(time.monotonic(), state))
                self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def distinct_states(self) -> set[tuple[Any, ...]]:
        return {o.state for o in self.observations}


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank) of values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
