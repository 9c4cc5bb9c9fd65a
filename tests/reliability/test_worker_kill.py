"""A worker SIGKILLed in the middle of an import, five times, at random points.

The import is the full Spack catalog (8,913 packages, 44k versions) from a file:// mirror.
Each kill lands at a random moment inside one fifth of the time a clean import takes, so the
five kills spread over fetching, parsing and writing. The message stays unacked while the
worker runs it, so RabbitMQ hands it to the next worker; the sixth worker finishes it. The
final catalog must equal a clean, undisturbed import, and a reader polling the API all along
must only ever have seen no catalog, the empty new row, or the complete catalog.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.config import load_settings
from syncd.db.engine import make_engine
from tests.reliability.catalogs import catalog_row, fingerprint
from tests.reliability.conftest import Reference
from tests.reliability.harness import (
    PROCESS_TEST,
    ApiPoller,
    ApiServer,
    SyncdProcess,
    command_env,
    queue_state,
    wait_until,
    worker_process,
)
from tests.reliability.readers import ABSENT, catalog_probe, partial_states
from tests.reliability.results import CaseRecord

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(420)]

KILLS = 5


def _phase(worker: SyncdProcess) -> tuple[str, bool]:
    """Where the import was when the worker died, from its log; and whether it had finished."""
    events = [str(e.get("event")) for e in worker.events(since_start=True)]
    return _phase_of(events), "command_succeeded" in events


def _phase_of(events: list[str]) -> str:
    if "sync_finished" in events:
        return "recording the result"
    if "fetch_finished" in events:
        return "parsing + writing"
    if "fetch_started" in events:
        return "fetching"
    return "starting the attempt"


def test_worker_sigkilled_mid_import(
    pg_url: str,
    amqp_url: str,
    spack_reference: Reference,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    record = reliability("worker_sigkill")
    queue, env = command_env(pg_url, amqp_url, "rel_kill")
    rng = random.Random()
    api = ApiServer(env, logs / "api.log").start()
    poller = ApiPoller(api.base_url, catalog_probe("Spack"), interval=0.05)
    worker = worker_process(env, logs / "worker.log", threads=1)
    engine = make_engine(pg_url)
    kills: list[dict[str, object]] = []
    try:
        poller.start()
        from syncd.broker import make_broker
        from syncd.publish import publish_import

        settings = load_settings(env)
        broker = make_broker(settings)
        publish_import(broker, settings, name="Spack", source=spack_reference.source)
        broker.close()
        # The clean in-process import is the fastest this import can run; the worker, a
        # separate process sharing 2 cores with the API, the reader and PostgreSQL, is slower.
        # Kills within the clean import's duration therefore always land mid-import.
        window = spack_reference.seconds
        for i in range(KILLS):
            worker.start()
            worker.wait_event("command_received", timeout=90)
            began = time.monotonic()
            # Stratified: the i-th kill falls somewhere in the i-th fifth of the import.
            delay = rng.uniform(i / KILLS, (i + 1) / KILLS) * window
            time.sleep(delay)
            phase, finished = _phase(worker)
            worker.kill(signal.SIGKILL)
            assert not finished, (
                f"kill {i + 1} came after the import had finished ({delay:.1f}s); "
                "the clean import is faster than the worker here"
            )
            kills.append({"after_s": round(time.monotonic() - began, 2), "phase": phase})
        worker.start()
        worker.wait_event("command_succeeded", timeout=300)
        final_counts = spack_reference.fingerprint.counts
        wait_until(
            lambda: any(s != ABSENT and s[1] == final_counts for s in poller.distinct_states()),
            timeout=60,
            what="the API reader to see the complete catalog",
        )
    finally:
        poller.stop()
        worker.stop()
        api.stop()

    try:
        row = catalog_row(engine, name="Spack")
        assert row is not None, "no Spack catalog after the final worker finished"
        final = fingerprint(engine, row["id"])
    finally:
        engine.dispose()
    ready, _ = queue_state(amqp_url, queue)
    dead, _ = queue_state(amqp_url, f"{queue}.XQ")
    reference = spack_reference.fingerprint
    complete = [(0, 0, 0), reference.counts]
    seen = poller.distinct_states()
    partial = partial_states(seen, complete)
    record.try_(
        f"{KILLS} SIGKILLs of the worker's process group while it imported the full Spack "
        f"catalog ({reference.packages:,} packages, {reference.versions:,} versions, "
        f"{reference.targets:,} targets), each at a random point of one fifth of a clean "
        f"import's {spack_reference.seconds:.1f} s; then a sixth worker"
    )
    record.hold(
        "the redelivered message completed the import; the catalog equals a clean import "
        "row for row (same digest); the API reader saw only: no catalog, the empty new row, "
        "the complete catalog"
    )
    record.figure("kills", kills)
    record.figure("clean import (s)", round(spack_reference.seconds, 1))
    record.figure("reader polls", poller.polls)
    record.figure("reader errors", poller.errors)
    record.figure("distinct states seen", len(seen))
    record.figure("final catalog", final.summary())
    record.figure("equals clean import", final == reference)
    record.figure("partial states seen", len(partial))
    record.summarize(
        f"{len(kills)} kills mid-import; final catalog equals a clean import: "
        f"{'yes' if final == reference else 'NO'}; reader: {poller.polls} polls, "
        f"{len(partial)} partial states"
    )

    assert final == reference, f"after kills: {final.summary()}; clean: {reference.summary()}"
    assert row["update_errors"] == "" and row["last_successful_update"] is not None, row
    assert (ready, dead) == (0, 0), f"{ready} messages left on the queue, {dead} dead letters"
    assert not partial, f"the API reader saw partial catalogs: {sorted(partial, key=str)[:5]}"
    assert poller.polls > 100, f"the reader polled only {poller.polls} times"
