"""The events outbox (issue 15) against crashes and a RabbitMQ outage, with real processes.

`syncd worker` runs the relay. Its RabbitMQ is reached through a TCP proxy of the test's
own (never the machine's shared broker is stopped): freezing the proxy holds a publish
between the relay's claim and RabbitMQ's confirm; stopping it is an outage as the clients
see one (connections reset, connects refused). A consumer queue bound on the real broker
counts what arrives.

- SIGKILL between commit and publish: the event committed, the relay in the middle of
  publishing it; the worker's process group is SIGKILLed; the next worker publishes it.
- Crash before commit: a process writes a catalog and its event in one transaction and is
  SIGKILLed before committing; nothing is ever published for it.
- RabbitMQ outage: events written while RabbitMQ is away go out when it is back; the relay
  logs one line for the outage and one for its end, and its worker lives on.
- RabbitMQ restart (a node of the suite's own): events published before it survive in a
  consumer's durable queue; those written while it was down go out after it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from syncd.db.engine import make_engine
from syncd.db.process_tables import EventOutbox
from syncd.db.tables import Catalog
from tests.reliability.harness import (
    PROCESS_TEST,
    command_env,
    wait_until,
    worker_process,
)
from tests.reliability.private_services import PrivateRabbitMQ
from tests.reliability.results import REPO_ROOT, CaseRecord
from tests.support.events import (
    StoppableProxy,
    bind_queue,
    check_body,
    take,
    upstream_of,
    write_events,
)
from tests.support.freezable_proxy import FreezableProxy, via
from tests.support.services import unique_name

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(240)]


def _claimed_by_someone(engine: Engine, event_id: str) -> bool:
    """Whether a relay holds the row's lock (claimed, not committed): SKIP LOCKED skips it."""
    with engine.begin() as conn:
        free = conn.execute(
            select(EventOutbox.id)
            .where(EventOutbox.event_id == uuid.UUID(event_id))
            .with_for_update(skip_locked=True)
        ).first()
    return free is None


def _published(engine: Engine) -> dict[str, tuple[bool, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(EventOutbox.event_id, EventOutbox.published_at, EventOutbox.attempts)
        )
        return {r.event_id.hex: (r.published_at is not None, r.attempts) for r in rows}


def _events(env: dict[str, str], exchange: str) -> dict[str, str]:
    return {**env, "SYNCD_EVENTS_EXCHANGE": exchange, "SYNCD_EVENTS_POLL_SECONDS": "0.1"}


def test_sigkill_between_commit_and_publish_loses_nothing(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("events_sigkill")
    exchange, queue = unique_name("rel_ev"), unique_name("rel_evq")
    bind_queue(amqp_url, exchange, queue)
    proxy = FreezableProxy(upstream_of(amqp_url))
    # The publish deadline (which would release the claim) far beyond the kill.
    _, env = command_env(pg_url, via(amqp_url, proxy.port), "rel_ev", publish_timeout_seconds=120)
    engine = make_engine(pg_url)
    worker = worker_process(_events(env, exchange), logs / "worker.log")
    try:
        worker.start()
        worker.wait_event("events_relay_started", timeout=60)
        first = write_events(engine, 1)
        assert [b["event_id"] for _, _, b in take(amqp_url, queue, 1)] == first

        proxy.freeze()
        [held] = write_events(engine, 1)  # committed; the relay claims it and publishes
        wait_until(
            lambda: _claimed_by_someone(engine, held),
            timeout=30,
            what="the relay to claim the event and wait for RabbitMQ's confirm",
        )
        worker.kill()  # SIGKILL, the whole process group
        assert _published(engine)[held] == (False, 0), "the killed relay's claim must roll back"

        restarted = worker_process(
            _events({**env, "SYNCD_BROKER_URL": amqp_url}, exchange), logs / "worker2.log"
        )
        started = time.monotonic()
        restarted.start()
        try:
            restarted.wait_event("events_relay_started", timeout=60)
            got = take(amqp_url, queue, 1, timeout=60)
            delay = time.monotonic() - started
            wait_until(
                lambda: _published(engine)[held] == (True, 1),
                timeout=30,
                what="the new relay to mark the event published",
            )
            got += take(amqp_url, queue, 0, timeout=0)  # a duplicate, if any, is there now
        finally:
            restarted.stop()
    finally:
        worker.stop()
        proxy.close()
        engine.dispose()
    delivered = [b["event_id"] for _, _, b in got]
    for _, _, body in got:
        check_body(body)
    record.try_(
        "a committed catalog.synced event, claimed by the relay of `syncd worker` whose "
        "RabbitMQ (through a TCP proxy) stopped answering mid-publish; the worker's process "
        "group SIGKILLed there; a new worker started"
    )
    record.figure("event published after the restart", delivered == [held])
    record.figure("seconds from the new worker's start to the event's arrival", round(delay, 1))
    record.summarize(
        f"SIGKILL mid-publish: the event arrived {delay:.1f} s after the next worker "
        f"started, {delivered.count(held)} time(s)"
    )
    assert delivered == [held], delivered
    record.hold(
        "the killed relay's claim rolled back (row unpublished, attempts 0); the next worker's "
        "relay published the event, once, and marked it"
    )


CRASHER = """
import sys, time, uuid
from syncd.db.engine import make_engine
from syncd.db.tables import Catalog
from syncd.events.outbox import write_event
engine = make_engine(sys.argv[1])
conn = engine.connect()
conn.begin()
row = {"name": "Crashed", "version": "1", "uuid": uuid.uuid4()}
conn.execute(Catalog.__table__.insert().values(**row, catalog_type="binary_runtime"))
print(write_event(conn, "catalog.created", row, {"catalog_type": "binary_runtime"}).hex)
sys.stdout.flush()
time.sleep(600)
"""


def test_crash_before_commit_publishes_nothing(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("events_crash_before_commit")
    exchange, queue = unique_name("rel_ev"), unique_name("rel_evq")
    bind_queue(amqp_url, exchange, queue)
    _, env = command_env(pg_url, amqp_url, "rel_ev")
    engine = make_engine(pg_url)
    worker = worker_process(_events(env, exchange), logs / "worker.log")
    crasher = subprocess.Popen(
        [sys.executable, "-c", CRASHER, pg_url], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        worker.start()
        worker.wait_event("events_relay_started", timeout=60)
        assert crasher.stdout is not None
        lost = crasher.stdout.readline().strip()
        assert len(lost) == 32, "the crashing process did not write its event"
        crasher.kill()  # SIGKILL with the transaction open
        crasher.wait(10)
        # The relay publishes in id order: once a later event arrived, an earlier one would
        # have arrived before it.
        after = write_events(engine, 1)
        got = take(amqp_url, queue, 1, timeout=60)
    finally:
        if crasher.poll() is None:
            crasher.kill()
        worker.stop()
    delivered = [b["event_id"] for _, _, b in got]
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(EventOutbox)).scalar_one()
        catalogs = conn.execute(
            select(func.count()).select_from(Catalog).where(Catalog.name == "Crashed")
        ).scalar_one()
        conn.execute(text("SELECT 1"))
    engine.dispose()
    record.try_(
        "a process inserted a catalog and wrote its catalog.created event in one transaction, "
        "then was SIGKILLed before committing; `syncd worker`'s relay ran throughout"
    )
    record.figure("events published for the uncommitted change", delivered.count(lost))
    record.summarize(
        f"crash before commit: {delivered.count(lost)} events published, "
        f"{catalogs} catalogs left, outbox rows {rows} (the later event only)"
    )
    assert delivered == after, delivered
    assert (rows, catalogs) == (1, 0)
    record.hold(
        "neither the catalog nor its event exists; the relay published only the event "
        "committed afterwards"
    )


def test_rabbitmq_outage_delays_events_and_loses_none(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("events_rabbitmq_outage")
    exchange, queue = unique_name("rel_ev"), unique_name("rel_evq")
    bind_queue(amqp_url, exchange, queue)
    proxy = StoppableProxy(upstream_of(amqp_url))
    _, env = command_env(pg_url, proxy.url(amqp_url), "rel_ev")
    engine = make_engine(pg_url)
    worker = worker_process(_events(env, exchange), logs / "worker.log")
    try:
        worker.start()
        worker.wait_event("events_relay_started", timeout=60)
        before = write_events(engine, 2)
        assert [b["event_id"] for _, _, b in take(amqp_url, queue, 2)] == before

        proxy.stop()
        during = write_events(engine, 20)
        worker.wait_event("events_relay_waiting", timeout=60)
        wait_until(
            lambda: sum(a for ok, a in _published(engine).values() if not ok) >= 3,
            timeout=60,
            what="the relay to try again during the outage",
        )
        down = time.monotonic()
        proxy.start()
        got = take(amqp_url, queue, 20, timeout=90)
        back = time.monotonic() - down
        worker.wait_event("events_relay_resumed", timeout=30)
        alive = worker.alive()
        waiting = worker.events("events_relay_waiting", since_start=True)
        resumed = worker.events("events_relay_resumed", since_start=True)
    finally:
        worker.stop()
        proxy.stop()
        engine.dispose()
    delivered = [b["event_id"] for _, _, b in got]
    record.try_(
        "RabbitMQ unreachable for `syncd worker` (a TCP proxy in front of it stopped: "
        "connections reset, connects refused) while 20 events were committed; then back"
    )
    record.figure("events during the outage", len(during))
    record.figure("delivered after it", len(delivered))
    record.figure("duplicates", len(delivered) - len(set(delivered)))
    record.figure("seconds from RabbitMQ's return to the last event", round(back, 1))
    record.figure("outage log lines (waiting / resumed)", f"{len(waiting)} / {len(resumed)}")
    record.summarize(
        f"{len(during)} events committed during the outage, {len(set(delivered))} delivered "
        f"{back:.1f} s after RabbitMQ returned, in order; "
        f"{len(waiting)} waiting + {len(resumed)} resumed line; the worker lived on"
    )
    assert delivered == during, "events lost, duplicated or out of order"
    assert (len(waiting), len(resumed)) == (1, 1)
    assert alive, "the relay's outage must not stop its worker"
    record.hold(
        "every event written during the outage was published once RabbitMQ was back, in "
        "commit order, none twice; one `events_relay_waiting` and one `events_relay_resumed` "
        "line; the worker process never stopped"
    )


def test_rabbitmq_restart_keeps_published_events_and_sends_the_rest(
    private_mq: PrivateRabbitMQ,
    pg_url: str,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    """A real restart of a RabbitMQ node of the suite's own: what was published before it
    survives in a consumer's durable queue (durable exchange, persistent messages), what
    was written while the node was down goes out when it is back."""
    record = reliability("events_rabbitmq_restart")
    amqp = private_mq.url()
    exchange, queue = unique_name("rel_ev"), unique_name("rel_evq")
    bind_queue(amqp, exchange, queue)
    _, env = command_env(pg_url, amqp, "rel_ev")
    engine = make_engine(pg_url)
    worker = worker_process(_events(env, exchange), logs / "worker.log")
    try:
        worker.start()
        worker.wait_event("events_relay_started", timeout=60)
        before = write_events(engine, 5)
        wait_until(
            lambda: all(ok for ok, _ in _published(engine).values()),
            timeout=60,
            what="the first events to be confirmed",
        )
        private_mq.stop()
        during = write_events(engine, 5)
        worker.wait_event("events_relay_waiting", timeout=60)
        private_mq.start()
        back = time.monotonic()
        got = take(amqp, queue, 10, timeout=120)
        seconds = time.monotonic() - back
        worker.wait_event("events_relay_resumed", timeout=30)
        alive = worker.alive()
    finally:
        worker.stop()
        engine.dispose()
    delivered = [b["event_id"] for _, _, b in got]
    record.try_(
        "5 events published and confirmed into a consumer's durable queue, then the RabbitMQ "
        "node (the suite's own) stopped; 5 events committed while it was down; node started"
    )
    record.figure("published before the restart, found after it", len(set(before) & set(delivered)))
    record.figure(
        "written during the restart, delivered after it", len(set(during) & set(delivered))
    )
    record.figure("duplicates", len(delivered) - len(set(delivered)))
    record.figure("seconds from the node's start to the last event", round(seconds, 1))
    record.summarize(
        f"{len(set(before) & set(delivered))}/5 events published before the restart kept, "
        f"{len(set(during) & set(delivered))}/5 written during it delivered "
        f"{seconds:.1f} s after the node was back; the worker lived on"
    )
    assert delivered == before + during, delivered
    assert alive
    record.hold(
        "the exchange and the persistent events survived the restart; the events of the "
        "outage were published after it, in order, none twice; the worker reconnected itself"
    )
