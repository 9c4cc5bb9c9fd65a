"""1,000 duplicate update messages for one catalog right after its upstream changed.

The worker (4 threads) takes them as fast as it can. Exactly one sync may write rows; every
other message must be a cheap no-op (a conditional GET answered 304, or a download whose
sync finds nothing to change), and the queue must drain with nothing dead-lettered.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.config import load_settings
from syncd.db.engine import make_engine
from tests.reliability.catalogs import catalog_row, fingerprint
from tests.reliability.harness import (
    PROCESS_TEST,
    command_env,
    queue_state,
    wait_consumers,
    wait_until,
    worker_process,
)
from tests.reliability.results import CaseRecord
from tests.support.fake_upstream import FakeUpstream

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(300)]

DUPLICATES = 1000


def test_duplicate_messages_one_sync(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("duplicate_messages")
    queue, env = command_env(pg_url, amqp_url, "rel_dup")
    settings = load_settings(env)
    worker = worker_process(env, logs / "worker.log", threads=4)
    engine = make_engine(pg_url)
    from syncd.broker import make_broker
    from syncd.publish import publish_import, publish_update

    broker = make_broker(settings)
    with FakeUpstream("sample") as up:
        try:
            worker.start()
            wait_consumers(amqp_url, queue, timeout=90)
            publish_import(broker, settings, name="Spack", source=up.spack_url)
            worker.wait_event("command_succeeded", timeout=60)
            row = catalog_row(engine, name="Spack")
            assert row is not None
            # Upstream changes: one package's summary is edited.
            doc = json.loads(up.content(up.SPACK))
            first = sorted(doc["packages"])[0]
            doc["packages"][first]["summary"] = "edited upstream"
            up.set_file(up.SPACK, json.dumps(doc).encode())
            up.reset_requests()
            started = time.monotonic()
            for _ in range(DUPLICATES):
                publish_update(broker, settings, catalog_uuid=row["uuid"].hex)
            publish_seconds = time.monotonic() - started
            done = worker.wait_event("command_succeeded", timeout=240, count=DUPLICATES + 1)
            wait_until(
                lambda: queue_state(amqp_url, queue)[0] == 0, timeout=30, what="an empty queue"
            )
            drain_seconds = time.monotonic() - started
            ready, _ = queue_state(amqp_url, queue)
            dead, _ = queue_state(amqp_url, f"{queue}.XQ")
            requests = up.requests_for(up.SPACK)
            final = fingerprint(engine, row["id"])
            after = catalog_row(engine, id=row["id"])
        finally:
            broker.close()
            worker.stop()
            engine.dispose()

    updates = done[1:]  # the first success is the import
    writers = [e for e in updates if e.get("rows_written")]
    noops = [e for e in updates if not e.get("rows_written")]
    not_modified = len(worker.events("upstream_not_modified"))
    downloads = sum(1 for r in requests if r.status == 200)
    noop_ms = [1000 * float(e["seconds"]) for e in noops]
    failed = worker.events("command_failed")
    record.try_(
        f"{DUPLICATES:,} update_catalog messages for one Spack catalog published at once, "
        "right after its upstream changed; one worker with 4 threads"
    )
    record.figure("messages", DUPLICATES)
    record.figure("syncs that wrote rows", len(writers))
    record.figure("rows written by that sync", writers[0].get("rows_written") if writers else 0)
    record.figure("no-ops", len(noops))
    record.figure("answered 304 (no download)", not_modified)
    record.figure("full downloads", downloads)
    noop_p99 = sorted(noop_ms)[max(0, int(len(noop_ms) * 0.99) - 1)] if noop_ms else 0.0
    record.figure("no-op median (ms)", round(statistics.median(noop_ms), 1) if noop_ms else 0)
    record.figure("no-op p99 (ms)", round(noop_p99, 1))
    record.figure("publish (s)", round(publish_seconds, 1))
    record.figure("queue drained after (s)", round(drain_seconds, 1))
    record.figure("failed attempts", len(failed))
    record.summarize(
        f"{DUPLICATES:,} messages: {len(writers)} sync wrote rows, {len(noops)} no-ops "
        f"(median {statistics.median(noop_ms) if noop_ms else 0:.0f} ms), "
        f"queue drained in {drain_seconds:.0f} s"
    )

    assert len(updates) == DUPLICATES
    assert len(writers) == 1, f"{len(writers)} syncs wrote rows: {writers[:3]}"
    assert len(noops) == DUPLICATES - 1
    # A message that finds the new validators stored is answered 304 without a download;
    # only the few taken while the first sync ran may download again (and write nothing).
    assert downloads <= 1 + 4, f"{downloads} full downloads for one change"
    assert not_modified >= DUPLICATES - 5
    # Cheap: a conditional GET and two small UPDATEs, not a download and a sync (~seconds).
    assert statistics.median(noop_ms) < 250, f"median no-op {statistics.median(noop_ms):.0f} ms"
    assert (ready, dead) == (0, 0), (ready, dead)
    assert not failed, failed[:3]
    assert after is not None and after["update_errors"] == ""
    assert final.packages == 5
    record.hold(
        "one sync wrote the change; every other message was a no-op answered by a conditional "
        "GET (304) or a sync that wrote nothing; the queue drained, nothing dead-lettered"
    )
