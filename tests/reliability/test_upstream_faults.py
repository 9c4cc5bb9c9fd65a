"""Upstream faults from the fake upstream, through the real adapters, fetcher and service.

A Spack catalog is imported from the fake upstream; then, one fault at a time, upstream
publishes new content and the fault hits it. Each update must end as syncd promises: the
right classified error (transient: retry; permanent: dead-letter) in update_errors, the
previous catalog kept row for row, and a clean update once the fault is gone. The decision
the worker takes is `service.is_transient(exc)`, exactly what syncd.worker._run calls.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.base import load_adapters
from adapters.fetch import Fetcher
from syncd import service
from syncd.db.engine import make_engine
from syncd.errors import UpstreamError
from tests.reliability.catalogs import catalog_row, fingerprint
from tests.reliability.results import CaseRecord
from tests.support.fake_upstream import FakeUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

SIZE_CAP = 8 * 1024 * 1024
GIB = 1 << 30
DEADLINE = 2.0
SETTINGS: dict[str, Any] = {
    "fetch_connect_timeout": 1.0,
    "fetch_read_timeout": 1.0,
    "fetch_retries": 1,
    "fetch_max_bytes": SIZE_CAP,
}


@dataclass
class Fault:
    label: str
    kind: str
    transient: bool | None  # None: the update must succeed
    words: str  # what update_errors must mention
    options: dict[str, Any] = field(default_factory=dict)
    times: int | None = None
    new_content: bool = True  # upstream publishes changed data before the fault


FAULTS = [
    Fault("HTTP 500", "500", True, "HTTP 500"),
    Fault("HTTP 500 once (in-attempt retry)", "500", None, "", times=1),
    Fault("HTTP 429 with Retry-After", "429", True, "429", {"retry_after": 1}),
    Fault("connect/read timeout (stall 5 s)", "stall", True, "Timed out", {"delay": 5}),
    Fault(
        "slow drip (96 B / 0.1 s)", "slow", True, "longer than", {"drip_bytes": 96, "delay": 0.1}
    ),
    Fault(
        "response headers trickled (1 B / 0.1 s)",
        "slow_headers",
        True,
        "the deadline for the whole request",
        {"delay": 0.1, "header_bytes": 300},
    ),
    Fault("truncated body (connection cut)", "truncated_body", True, "broke"),
    Fault("truncated JSON (complete response)", "truncated_json", False, "repology"),
    Fault("invalid JSON (HTML page)", "invalid_json", False, "repology"),
    Fault("valid JSON, wrong schema", "wrong_schema", False, "repology"),
    Fault("1 GiB body, chunked", "oversized", False, "larger than the limit", {"size": GIB}),
    Fault(
        "1 GiB body, Content-Length declared",
        "oversized",
        False,
        "larger than the limit",
        {"size": GIB, "declare_length": True},
    ),
    Fault(
        "redirect to a disallowed host",
        "redirect",
        False,
        "not an allowed host",
        {"redirect_host": "evil.invalid"},
    ),
    Fault("changed ETag, identical content", "changed_etag", None, "", new_content=False),
    Fault(
        "JSON nesting 40,000 arrays (80 KB)",
        "deep_nesting",
        False,
        "more than 32 levels deep",
        {"depth": 40_000},
    ),
    Fault(
        "gzip body (no Content-Encoding) of 256 MiB in 256 KB",
        "gzip_body",
        False,
        "unpacks to more than the limit",
        {"padding": GIB // 4},
    ),
]
# Faults whose cost is in reading the body, not in receiving it: peak memory recorded.
MEMORY_FAULTS = {"oversized", "deep_nesting", "gzip_body"}


def _spack_variant(base: bytes, n: int) -> bytes:
    """The same Spack document with one package's summary changed: new content, new ETag."""
    doc = json.loads(base)
    first = sorted(doc["packages"])[0]
    doc["packages"][first]["summary"] = f"changed upstream, revision {n}"
    return json.dumps(doc, indent=2).encode()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream("sample") as up:
        yield up


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _update(engine: Engine, adapters: Any, fetcher: Fetcher, uuid: str) -> BaseException | None:
    try:
        service.update_catalog(engine, adapters, fetcher, catalog_uuid=uuid, will_retry=True)
    except Exception as exc:
        return exc
    return None


def _problems(
    fault: Fault,
    exc: BaseException | None,
    before: dict[str, Any],
    after: dict[str, Any],
    unchanged: bool,
    served: int,
    seconds: float,
) -> list[str]:
    """What went wrong with one fault, in words; [] when syncd did what it promises."""
    found = []
    if fault.transient is None:
        if exc is not None:
            found.append(f"the update failed: {exc!r}")
        if after["update_errors"]:
            found.append(f"update_errors set: {after['update_errors']}")
        if not after["last_successful_update"] > before["last_successful_update"]:
            found.append("last_successful_update did not advance")
        if not fault.new_content and not unchanged:
            found.append("identical content under a new ETag changed rows")
        return found
    if exc is None:
        return ["the update did not fail"]
    if service.is_transient(exc) is not fault.transient:
        want = "transient" if fault.transient else "permanent"
        found.append(f"classified wrongly (want {want}): {type(exc).__name__}: {exc}")
    errors = after["update_errors"]
    if fault.words.lower() not in errors.lower():
        found.append(f"update_errors does not mention {fault.words!r}: {errors!r}")
    if errors.endswith("(will retry)") is not fault.transient:
        found.append(f"update_errors wrong about retrying: {errors!r}")
    if not unchanged:
        found.append("the previous catalog was not kept")
    if after["last_successful_update"] != before["last_successful_update"]:
        found.append("last_successful_update moved on a failure")
    if not after["last_update_attempt"] > before["last_update_attempt"]:
        found.append("last_update_attempt not set")
    if fault.kind == "oversized" and served >= 4 * SIZE_CAP + (1 << 20):
        found.append(f"{served} bytes downloaded for a {SIZE_CAP}-byte cap: not cut off")
    if fault.kind in {"slow", "stall", "slow_headers"}:
        # One deadline for the whole fetch, retries included, plus a little.
        bound = DEADLINE + 1.5
        if seconds > bound:
            found.append(
                f"took {seconds:.1f} s; the fetcher's {DEADLINE:g} s deadline should have "
                f"ended it within {bound:g} s"
            )
    return found


def test_upstream_faults(
    pg_url: str, upstream: FakeUpstream, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("upstream_faults")
    settings = upstream.settings(database_url=pg_url, **SETTINGS)
    engine = make_engine(pg_url)
    adapters = load_adapters(settings)
    # Deadline of a whole fetch 2 s (in production: 10 read timeouts) so the drip and trickle
    # cases are quick.
    fetcher = Fetcher(settings, deadline=DEADLINE)
    base = upstream.content(upstream.SPACK)
    rows: list[dict[str, Any]] = []
    problems: dict[str, list[str]] = {}
    try:
        result = service.import_catalog(engine, adapters, fetcher, name="Spack")
        uuid = result.catalog_uuid
        for n, fault in enumerate(FAULTS, start=1):
            upstream.clear_faults()
            if fault.new_content:
                upstream.set_file(upstream.SPACK, _spack_variant(base, n))
            before = fingerprint(engine, result.catalog_id)
            row_before = catalog_row(engine, id=result.catalog_id)
            assert row_before is not None
            upstream.fault(upstream.SPACK, fault.kind, times=fault.times, **fault.options)
            upstream.reset_requests()
            rss_before = _peak_rss_mb()
            started = time.monotonic()
            exc = _update(engine, adapters, fetcher, uuid)
            seconds = time.monotonic() - started
            served = sum(r.body_bytes for r in upstream.requests_for(upstream.SPACK))
            requests = len(upstream.requests_for(upstream.SPACK))
            row = catalog_row(engine, id=result.catalog_id)
            assert row is not None
            after = fingerprint(engine, result.catalog_id)
            outcome: dict[str, Any] = {
                "fault": fault.label,
                "seconds": round(seconds, 1),
                "requests": requests,
                "bytes served": served,
            }
            growth = _peak_rss_mb() - rss_before
            found = _problems(fault, exc, row_before, row, before == after, served, seconds)
            if found:
                problems[fault.label] = found
            if exc is None:
                outcome["result"] = "updated" if fault.new_content else "no rows written"
            else:
                kind = "transient: retry" if service.is_transient(exc) else "permanent: no retry"
                outcome["result"] = kind
                outcome["update_errors"] = row["update_errors"][:160]
                if isinstance(exc, UpstreamError) and exc.retry_after:
                    outcome["retry_after"] = exc.retry_after
            if fault.kind in MEMORY_FAULTS:
                outcome["peak RSS growth (MB)"] = round(growth, 1)
                if growth >= 64:
                    problems.setdefault(fault.label, []).append(
                        f"peak RSS grew {growth:.0f} MB: the body was held in memory"
                    )
            rows.append(outcome)
            # The fault gone, the next update succeeds and clears update_errors.
            upstream.clear_faults()
            healed_exc = _update(engine, adapters, fetcher, uuid)
            healed = catalog_row(engine, id=result.catalog_id)
            if healed_exc is not None or healed is None or healed["update_errors"]:
                problems.setdefault(fault.label, []).append(
                    f"the update after the fault failed too: {healed_exc!r}"
                )
    finally:
        fetcher.close()
        engine.dispose()
    transient = sum(1 for f in FAULTS if f.transient)
    permanent = sum(1 for f in FAULTS if f.transient is False)
    record.try_("; ".join(f.label for f in FAULTS))
    held = (
        f"{transient} transient faults -> update_errors ending '(will retry)', a retry; "
        f"{permanent} permanent ones -> a clear update_errors and no retry; the previous "
        "catalog kept row for row every time; the 1 GiB bodies (on the wire or unpacked "
        f"from gzip) were cut at the {SIZE_CAP // 2**20} MiB cap while streaming; nesting "
        "deeper than 32 levels was refused while parsing; a changed ETag over identical content "
        "wrote no rows; after each fault the next update succeeded and cleared update_errors"
    )
    record.hold(held if not problems else f"all but {len(problems)} faults: " + held)
    record.figure("faults survived", len(FAULTS) - len(problems))
    record.figure(
        "transient / permanent / succeeded",
        f"{transient} / {permanent} / {len(FAULTS) - transient - permanent}",
    )
    record.figure("per fault", rows)
    record.summarize(
        f"{len(FAULTS)} faults, {len(FAULTS) - len(problems)} handled as promised: {transient} "
        f"transient (retry), {permanent} permanent (no retry), "
        f"{len(FAULTS) - transient - permanent} no error; previous data kept"
    )
    if problems:
        record.figure("problems", problems)
    assert not problems, "\n".join(f"{k}: {'; '.join(v)}" for k, v in problems.items())


def test_fetcher_refuses_private_hosts_unless_allowed(
    upstream: FakeUpstream, reliability: Callable[[str], CaseRecord]
) -> None:
    """The worker itself, not only the API, refuses to fetch from the internal network: a
    source_url stored before the operator turned the setting off, or sent straight over
    AMQP, must not turn the worker into a proxy."""
    record = reliability("fetch_refuses_private")
    strict = upstream.settings(allow_private_sources=False)
    urls = [
        upstream.spack_url,
        f"http://localhost:{upstream.port}{upstream.SPACK}",
        f"http://[::1]:{upstream.port}{upstream.SPACK}",
        f"http://2130706433:{upstream.port}{upstream.SPACK}",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
    ]
    refused = []
    with Fetcher(strict) as fetcher:
        for url in urls:
            with pytest.raises(UpstreamError) as caught:
                fetcher.fetch(url)
            assert not caught.value.transient, url
            refused.append(url)
    assert upstream.requests_for(upstream.SPACK) == [], "a refused URL was still requested"
    # The operator's setting lets the same worker use an internal mirror.
    with Fetcher(upstream.settings(allow_private_sources=True)) as fetcher:
        assert fetcher.fetch(upstream.spack_url).status == 200
    record.try_("fetch with private sources not allowed: " + ", ".join(urls))
    record.figure("refused, permanent error, no request made", len(refused))
    record.summarize(
        f"{len(refused)} loopback, link-local, encoded-IP, file:// and gopher:// sources "
        "refused by the worker's fetcher before any request; allowed by the operator setting"
    )
    record.hold("refused without a request; the same URL fetched once the operator allows it")
