"""A worker SIGKILLed in the middle of a command, five times, at random points.

The data is the full Spack catalog (8,913 packages, 44k versions) from a file:// mirror.
Each kill lands at a random moment inside one fifth of the time a clean import takes, so the
five kills spread over fetching, parsing and writing. The message stays unacked while the
worker runs it, so RabbitMQ hands it to the next worker; the sixth worker finishes it. The
final catalog must equal a clean, undisturbed import, and a reader polling the API all along
must only ever have seen complete catalogs:
- import: no catalog, the empty new row, or the complete catalog;
- update (the Spack subset, 671 packages, grown to the full data): the old catalog or the
  new one.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from adapters.base import load_adapters
from adapters.fetch import Fetcher
from syncd import service
from syncd.config import load_settings
from syncd.db.engine import make_engine
from tests.reliability.catalogs import Fingerprint, catalog_row, fingerprint
from tests.reliability.conftest import Reference
from tests.reliability.harness import (
    PROCESS_TEST,
    ApiPoller,
    ApiServer,
    SyncdProcess,
    command_env,
    drain_queue,
    queue_state,
    wait_until,
    worker_process,
)
from tests.reliability.readers import ABSENT, catalog_probe, partial_states
from tests.reliability.results import CaseRecord

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(420)]

KILLS = 5


def _phase(worker: SyncdProcess) -> tuple[str, bool]:
    """Where the command was when the worker died, from its log; and whether it had finished."""
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


@dataclass
class KillRun:
    kills: list[dict[str, Any]]
    poller: ApiPoller
    final: Fingerprint
    row: dict[str, Any]
    ready: int
    dead: int
    partial: list[tuple[Any, ...]]
    rounds: int


@dataclass
class Setup:
    """What one round starts from: how to publish its command, and the complete catalogs an
    API reader may see while it runs."""

    publish: Callable[[Any, Any], None]
    complete: list[tuple[int, int, int]]


class LateKill(Exception):
    """A kill came after the command had finished: this round proves nothing."""


# A round whose last kill comes too late is thrown away and run again from a fresh start
# with a shorter window: how long the command takes in the worker is only known roughly
# (the shared machine's load changes from one minute to the next).
ROUNDS = 3
SHRINK = 0.6


def _kill_five_times(
    env: dict[str, str],
    queue: str,
    amqp_url: str,
    logs: Path,
    reference: Reference,
    prepare: Callable[[], Setup],
) -> KillRun:
    """Publish one command; SIGKILL five workers in turn while they run it; let a sixth
    finish; return what the database and an API reader saw. Starts over (prepare() again)
    if a kill landed after the command had already finished."""
    # Kills are spread over 80% of a clean in-process import's duration: the worker, a
    # separate process sharing 2 cores with the API, the reader and PostgreSQL, usually
    # takes longer, but not always.
    window = reference.seconds * 0.8
    # Five deaths in one command are what SYNCD_DELIVERY_LIMIT (default 3) calls a poison
    # message (tests/reliability/test_poison_message.py); here they stand for crashes the
    # command must survive, so the limit is set above them.
    env = {**env, "SYNCD_DELIVERY_LIMIT": "10"}
    for round_no in range(1, ROUNDS + 1):
        setup = prepare()
        try:
            run = _one_round(env, amqp_url, logs, reference, setup, window)
        except LateKill as late:
            print(f"round {round_no}: {late}; starting over with a shorter window")
            drain_queue(amqp_url, queue)
            window *= SHRINK
            continue
        ready, _ = queue_state(amqp_url, queue)
        dead, _ = queue_state(amqp_url, f"{queue}.XQ")
        return replace(run, ready=ready, dead=dead, rounds=round_no)
    raise AssertionError(f"in {ROUNDS} rounds a kill always came after the command finished")


def _one_round(
    env: dict[str, str],
    amqp_url: str,
    logs: Path,
    reference: Reference,
    setup: Setup,
    window: float,
) -> KillRun:
    """One try: five kills, then a worker that finishes; the queue figures are left at 0."""
    rng = random.Random()
    api = ApiServer(env, logs / "api.log").start()
    poller = ApiPoller(api.base_url, catalog_probe("Spack"), interval=0.05)
    worker = worker_process(env, logs / "worker.log", threads=1)
    kills: list[dict[str, Any]] = []
    try:
        poller.start()
        from syncd.broker import make_broker

        settings = load_settings(env)
        broker = make_broker(settings)
        setup.publish(broker, settings)
        broker.close()
        for i in range(KILLS):
            worker.start()
            worker.wait_event("command_received", timeout=90)
            began = time.monotonic()
            # Stratified: the i-th kill falls somewhere in the i-th fifth of the window.
            delay = rng.uniform(i / KILLS, (i + 1) / KILLS) * window
            time.sleep(delay)
            phase, finished = _phase(worker)
            worker.kill(signal.SIGKILL)
            if finished:
                raise LateKill(f"kill {i + 1} came {delay:.1f}s in, after the command finished")
            kills.append({"after_s": round(time.monotonic() - began, 2), "phase": phase})
        worker.start()
        worker.wait_event("command_succeeded", timeout=300)
        final_counts = reference.fingerprint.counts
        wait_until(
            lambda: any(s != ABSENT and s[1] == final_counts for s in poller.distinct_states()),
            timeout=60,
            what="the API reader to see the complete catalog",
        )
    finally:
        poller.stop()
        worker.stop()
        api.stop()
    engine = make_engine(env["SYNCD_DATABASE_URL"])
    try:
        row = catalog_row(engine, name="Spack")
        assert row is not None, "no Spack catalog after the final worker finished"
        final = fingerprint(engine, row["id"])
    finally:
        engine.dispose()
    partial = partial_states(poller.distinct_states(), setup.complete)
    return KillRun(kills, poller, final, row, ready=0, dead=0, partial=partial, rounds=0)


def _drop_catalogs(url: str) -> None:
    """A fresh start for a round: no catalog at all (packages and the rest cascade)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM catalog"))
    finally:
        engine.dispose()


def _report(record: CaseRecord, run: KillRun, reference: Reference, what: str) -> None:
    """Record the run's figures, then assert what must hold."""
    clean = reference.fingerprint
    record.figure(f"{what}: rounds (a round restarts if a kill comes too late)", run.rounds)
    record.figure(f"{what}: kills", run.kills)
    record.figure(f"{what}: reader polls / errors", f"{run.poller.polls} / {run.poller.errors}")
    record.figure(f"{what}: distinct states seen", len(run.poller.distinct_states()))
    record.figure(f"{what}: partial states seen", len(run.partial))
    record.figure(f"{what}: final catalog", run.final.summary())
    record.figure(f"{what}: equals clean import", run.final == clean)
    assert run.final == clean, f"after kills: {run.final.summary()}; clean: {clean.summary()}"
    assert run.row["update_errors"] == "" and run.row["last_successful_update"] is not None
    assert (run.ready, run.dead) == (0, 0), f"{run.ready} left on the queue, {run.dead} dead"
    assert not run.partial, f"the API reader saw partial catalogs: {run.partial[:5]}"
    assert run.poller.polls > 100, f"the reader polled only {run.poller.polls} times"


def test_worker_sigkilled_mid_import(
    pg_url: str,
    amqp_url: str,
    spack_reference: Reference,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    record = reliability("worker_sigkill")
    queue, env = command_env(pg_url, amqp_url, "rel_kill")

    clean = spack_reference.fingerprint

    def publish(broker: Any, settings: Any) -> None:
        from syncd.publish import publish_import

        publish_import(broker, settings, name="Spack", source=spack_reference.source)

    def prepare() -> Setup:
        _drop_catalogs(pg_url)
        return Setup(publish, [(0, 0, 0), clean.counts])

    run = _kill_five_times(env, queue, amqp_url, logs, spack_reference, prepare)
    record.try_(
        f"{KILLS} SIGKILLs of the worker's process group while it imported the full Spack "
        f"catalog ({clean.packages:,} packages, {clean.versions:,} versions, "
        f"{clean.targets:,} targets), each at a random point of one fifth of a clean "
        f"import's {spack_reference.seconds:.1f} s; then a sixth worker"
    )
    record.figure("clean import (s)", round(spack_reference.seconds, 1))
    record.summarize(
        f"{len(run.kills)} kills mid-import; final catalog equals a clean import: "
        f"{'yes' if run.final == clean else 'NO'}; reader: {run.poller.polls} polls, "
        f"{len(run.partial)} partial states"
    )
    _report(record, run, spack_reference, "import")
    record.hold(
        "the redelivered message completed the import; the catalog equals a clean import "
        "row for row (same digest); the API reader saw only: no catalog, the empty new row, "
        "the complete catalog"
    )


def test_worker_sigkilled_mid_update(
    pg_url: str,
    amqp_url: str,
    spack_reference: Reference,
    upstream_dir: Path,
    tmp_path: Path,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    record = reliability("worker_sigkill_update")
    queue, env = command_env(pg_url, amqp_url, "rel_killupd")
    clean = spack_reference.fingerprint
    mirror = tmp_path / "repology.json"
    settings = load_settings(env)
    starts: list[Fingerprint] = []

    def prepare() -> Setup:
        # The mirror first holds the subset; the catalog is imported from it, then the mirror
        # gets the full file (same Spack version label), and an update brings it there.
        _drop_catalogs(pg_url)
        shutil.copyfile(upstream_dir / "spack" / "repology.subset.json", mirror)
        engine = make_engine(pg_url)
        try:
            with Fetcher(settings) as fetcher:
                old = service.import_catalog(
                    engine, load_adapters(settings), fetcher, name="Spack", source=mirror.as_uri()
                )
            starts.append(fingerprint(engine, old.catalog_id))
        finally:
            engine.dispose()
        shutil.copyfile(Path(spack_reference.source.removeprefix("file://")), mirror)

        def publish(broker: Any, settings: Any) -> None:
            from syncd.publish import publish_update

            publish_update(broker, settings, catalog_uuid=old.catalog_uuid)

        return Setup(publish, [starts[-1].counts, clean.counts])

    run = _kill_five_times(env, queue, amqp_url, logs, spack_reference, prepare)
    before = starts[-1]
    record.try_(
        f"{KILLS} SIGKILLs of the worker while it updated a Spack catalog from the subset "
        f"({before.packages:,} packages) to the full data ({clean.packages:,}); then a sixth "
        "worker"
    )
    record.summarize(
        f"{len(run.kills)} kills mid-update; final catalog equals a clean import: "
        f"{'yes' if run.final == clean else 'NO'}; reader: {run.poller.polls} polls, "
        f"{len(run.partial)} partial states"
    )
    _report(record, run, spack_reference, "update")
    record.hold(
        "the redelivered update completed; the updated catalog equals a clean import of the "
        "new data row for row; the API reader saw only the old or the new catalog"
    )
