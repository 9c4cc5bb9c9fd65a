"""A poison message: a command that kills every worker that runs it is dead-lettered.

The fake upstream stalls its answer, so each worker is surely inside the command (waiting
for the upstream's response) when it is SIGKILLed, as an out-of-memory kill would hit it.
RabbitMQ redelivers the unanswered message to the next worker each time. With
SYNCD_DELIVERY_LIMIT=3, the worker after the fourth death must not run the command: the
message goes to `<queue>.XQ` with one message_rejected line saying why, the catalog's
update_errors and the command outcome say so too, and no worker takes it again.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.base import load_adapters
from adapters.fetch import Fetcher
from syncd import service
from syncd.config import Settings, load_settings
from syncd.db.engine import make_engine
from syncd.outcomes import read_outcome
from tests.reliability.catalogs import catalog_row
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

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(180)]


def _import_spack(settings: Settings, database_url: str) -> str:
    """The catalog the poisoned update works on, imported in-process; its uuid (hex)."""
    engine = make_engine(database_url)
    try:
        with Fetcher(settings) as fetcher:
            result = service.import_catalog(engine, load_adapters(settings), fetcher, name="Spack")
    finally:
        engine.dispose()
    return result.catalog_uuid


LIMIT = 3
KILLS = LIMIT + 1


def test_poison_message_is_dead_lettered_after_the_delivery_limit(
    pg_url: str,
    amqp_url: str,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    record = reliability("poison_message")
    with FakeUpstream() as upstream:
        queue, env = command_env(
            pg_url,
            amqp_url,
            "rel_poison",
            spack_source=upstream.spack_url,
            delivery_limit=LIMIT,
            fetch_read_timeout=120,
        )
        settings = load_settings(env)
        catalog_uuid = _import_spack(settings, pg_url)
        # From now on every request of the Spack file hangs far longer than the test: the
        # worker is inside the update, waiting for the answer, whenever it is killed.
        upstream.fault(upstream.SPACK, "stall", delay=120)
        upstream.reset_requests()
        from syncd.broker import make_broker
        from syncd.publish import publish_update

        broker = make_broker(settings)
        try:
            message_id = publish_update(broker, settings, catalog_uuid=catalog_uuid)
        finally:
            broker.close()

        worker = worker_process(env, logs / "worker.log", threads=1)
        started = time.monotonic()
        try:
            for kill in range(1, KILLS + 1):
                worker.start()
                wait_until(
                    lambda n=kill: len(upstream.requests_for(upstream.SPACK)) >= n,
                    timeout=60,
                    what=f"worker #{kill} to be inside the command (asking upstream)",
                )
                worker.kill(signal.SIGKILL)
            killed_after = time.monotonic() - started
            # The next worker: it must dead-letter the message instead of running it.
            worker.start()
            rejected = worker.wait_event("message_rejected", timeout=60)
            dead = wait_until(
                lambda: queue_state(amqp_url, f"{queue}.XQ")[0],
                timeout=30,
                what="the message in the dead-letter queue",
            )
            given_up_after = time.monotonic() - started
            # Nothing more reaches a worker: the queue is empty while a worker consumes it.
            wait_consumers(amqp_url, queue, timeout=30)
            ready, consumers = queue_state(amqp_url, queue)
            assert worker.alive(), f"the last worker died:\n{worker.tail()}"
            redelivered = worker.events("message_redelivered")
            ran = worker.events("command_received", since_start=True)
        finally:
            worker.stop()

    event = rejected[0]
    assert len(rejected) == 1, rejected
    assert event["reason"] == f"worker died {KILLS} times while processing it", event
    assert event["message_id"] == message_id and event["actor"] == "update_catalog", event
    assert event["dead_letter_queue"] == f"{queue}.XQ", event
    assert (dead, ready, consumers) == (1, 0, 1), (dead, ready, consumers)
    # Deliveries 2..4 were counted (deaths 1..3, within the limit) and ran; the fifth did not.
    assert [e["deaths"] for e in redelivered] == list(range(1, LIMIT + 1)), redelivered
    assert not ran, "the worker after the limit ran the command"
    assert len(upstream.requests_for(upstream.SPACK)) == KILLS

    engine = make_engine(pg_url)
    try:
        row = catalog_row(engine, uuid=uuid.UUID(catalog_uuid))
        outcome = read_outcome(engine, message_id)
    finally:
        engine.dispose()
    assert row is not None and f"worker died {KILLS} times" in row["update_errors"], row
    assert "Dead-lettered" in row["update_errors"], row
    assert outcome is not None and outcome.final and not outcome.succeeded, outcome
    assert f"worker died {KILLS} times" in outcome.error, outcome

    record.try_(
        f"SIGKILL of `syncd worker` {KILLS} times while it ran the same update (each time "
        "inside the command: the fake upstream stalls its answer), SYNCD_DELIVERY_LIMIT="
        f"{LIMIT}; then one more worker"
    )
    record.hold(
        "the worker after the limit did not run the command: the message went to the "
        "dead-letter queue with one message_rejected line (reason: worker died "
        f"{KILLS} times while processing it); the catalog's update_errors and the command "
        "outcome say so; the queue stayed empty and the worker kept running"
    )
    assert row["last_successful_update"] is not None, "the import's data was lost"
    record.figure("delivery limit", LIMIT)
    record.figure("kills", KILLS)
    record.figure("upstream requests (one per delivery that ran)", KILLS)
    record.figure("dead-lettered", dead)
    record.figure("seconds to the last kill", round(killed_after, 1))
    record.figure("seconds to the dead letter", round(given_up_after, 1))
    record.summarize(
        f"{KILLS} kills inside one command; the next worker dead-lettered it without running "
        f"it ({given_up_after:.1f} s from the publish); reason logged, update_errors written"
    )
