"""Load: 50 concurrent API clients for 30 s on the list endpoints while imports run.

`syncd api` (one uvicorn process) serves a database that already holds a Spack catalog;
one worker meanwhile imports the full Spack data over it and both full-scale EESSI stacks
from the fake upstream. Every request must succeed; p50 and p99 latency are reported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.base import load_adapters
from adapters.fetch import Fetcher
from syncd import service
from syncd.config import load_settings
from syncd.db.engine import make_engine
from tests.reliability.catalogs import catalog_rows
from tests.reliability.harness import (
    PROCESS_TEST,
    ApiServer,
    command_env,
    event_time,
    wait_consumers,
    worker_process,
)
from tests.reliability.load import run_load
from tests.reliability.readers import CATALOGS, PACKAGES, VERSIONS
from tests.reliability.results import CaseRecord
from tests.support.fake_upstream import FakeUpstream

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(300)]

CLIENTS = 50
SECONDS = 30.0
BASELINE_SECONDS = 10.0
TARGETS = "/api/marketplace-software-targets/"


def test_fifty_clients_during_import(
    pg_url: str,
    amqp_url: str,
    upstream_dir: Path,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    record = reliability("api_load")
    queue, env = command_env(pg_url, amqp_url, "rel_load")
    settings = load_settings(env)
    engine = make_engine(pg_url)
    # A catalog to read from the start: the Spack subset (671 packages), imported in-process.
    subset = (upstream_dir / "spack" / "repology.subset.json").as_uri()
    with Fetcher(settings) as fetcher:
        service.import_catalog(
            engine, load_adapters(settings), fetcher, name="Spack", source=subset
        )
    spack = next(r for r in catalog_rows(engine) if r["name"] == "Spack")
    engine.dispose()
    uuid = spack["uuid"].hex
    paths = [
        CATALOGS,
        f"{PACKAGES}?page_size=50",
        f"{PACKAGES}?catalog_uuid={uuid}&page=2&page_size=20",
        f"{PACKAGES}?name=py&o=-name",
        f"{VERSIONS}?page_size=50",
        f"{VERSIONS}?catalog_uuid={uuid}&o=-version",
        f"{TARGETS}?page_size=50",
        f"{CATALOGS}?o=-created&page_size=5",
    ]
    from syncd.broker import make_broker
    from syncd.publish import publish_import

    api = ApiServer(env, logs / "api.log")
    worker = worker_process(env, logs / "worker.log", threads=1)
    with FakeUpstream("full") as up:
        try:
            api.start()
            worker.start()
            wait_consumers(amqp_url, queue, timeout=90)
            # The same load with nothing else running, for comparison.
            idle = run_load(api.base_url, paths, clients=CLIENTS, seconds=BASELINE_SECONDS)
            broker = make_broker(settings)
            # The full Spack file over the subset's catalog (same version label: an update
            # that grows it 13-fold), then both full-scale EESSI stacks, one after another.
            publish_import(broker, settings, name="Spack", source=up.spack_url)
            for stack in ("2023.06", "2025.06"):
                publish_import(broker, settings, name="EESSI", version=stack, source=up.eessi_base)
            broker.close()
            worker.wait_event("command_received", timeout=60)
            result = run_load(api.base_url, paths, clients=CLIENTS, seconds=SECONDS)
            during = worker.events()
            api_alive = api.process.alive()
        finally:
            worker.stop()
            api.stop()

    received = [e for e in during if e.get("event") == "command_received"]
    finished = [e for e in during if e.get("event") in {"command_succeeded", "command_failed"}]
    import_seconds = 0.0
    if received:
        end = event_time(finished[-1]) if len(finished) >= len(received) else None
        begin = event_time(received[0])
        last = event_time(during[-1])
        import_seconds = ((end or last) - begin).total_seconds()
    summary = result.summary()
    record.try_(
        f"{CLIENTS} client threads, keep-alive connections, for {SECONDS:.0f} s over "
        f"{len(paths)} list URLs (catalogs, packages, versions, targets; filters, ordering, "
        "pages) on one `syncd api` process, while one worker imported the full Spack catalog "
        "and two full-scale EESSI stacks"
    )
    for name, value in summary.items():
        record.figure(name, value)
    record.figure("statuses", dict(result.statuses))
    for name in ("throughput_rps", "p50_ms", "p99_ms", "errors"):
        record.figure(f"idle baseline ({BASELINE_SECONDS:.0f} s): {name}", idle.summary()[name])
    record.figure("imports running during the load (s)", round(min(import_seconds, SECONDS), 1))
    record.figure("imports finished during the load", len(finished))
    idle_summary = idle.summary()
    record.summarize(
        f"{summary['requests']:,} requests, {summary['throughput_rps']} req/s, p50 "
        f"{summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, {summary['errors']} errors "
        f"(idle: {idle_summary['throughput_rps']} req/s, p50 {idle_summary['p50_ms']} ms, "
        f"p99 {idle_summary['p99_ms']} ms)"
    )
    if result.bad_samples:
        record.figure("bad answers (sample)", result.bad_samples[:3])
    if result.errors:
        record.figure("transport errors (sample)", result.errors[:3])

    assert api_alive
    assert received, "no import ran during the load"
    assert result.requests > CLIENTS * 10, summary
    # Every answer that came is right. A kept-alive connection the server dropped before
    # answering ("Server disconnected without sending a response") was seen 10 times in
    # 16,975 requests in one CI run on a loaded 2-core machine, never alone; the cause is
    # not known yet (an open item), so such drops are bounded and reported, not hidden.
    dropped = [e for e in result.errors if "Server disconnected without sending" in e]
    assert result.bad_samples == [] and len(result.errors) == len(dropped), (
        summary,
        result.bad_samples[:3],
        result.errors[:3],
    )
    assert len(dropped) <= result.requests // 1000, (summary, dropped[:3])
    assert idle.bad == 0, (idle.summary(), idle.bad_samples[:3], idle.errors[:3])
    record.figure("connections dropped before an answer", len(dropped))
    record.hold(f"no wrong answer in {result.requests:,} requests, {len(dropped)} dropped")
