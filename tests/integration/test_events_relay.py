"""The events relay (syncd/events/relay.py) against a real RabbitMQ vhost, on SQLite and
PostgreSQL: what it publishes and how, two relays at once, RabbitMQ going away, the log of the
embedded default, and the consumer example of docs/events.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update
from structlog.testing import capture_logs

from syncd.config import Settings
from syncd.db.process_tables import EventOutbox
from syncd.events.relay import (
    AmqpDestination,
    EventRelay,
    LogDestination,
    backlog,
    make_relay,
    relay_batch,
)
from syncd.metrics import EVENTS_BACKLOG
from tests.support.events import (
    DOCS,
    EVENT_TYPES,
    StoppableProxy,
    bind_queue,
    check_body,
    outbox_rows,
    take,
    upstream_of,
    write_events,
)
from tests.support.services import unique_name

pytestmark = pytest.mark.rabbitmq


def _wait(predicate, timeout: float = 30.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_relay_publishes_in_order_confirmed_persistent_and_marks_rows(
    engine: Engine, amqp_url: str
) -> None:
    exchange, queue = unique_name("ev"), unique_name("evq")
    bind_queue(amqp_url, exchange, queue)
    ids = write_events(engine, 5)
    destination = AmqpDestination(amqp_url, exchange)
    try:
        assert relay_batch(engine, destination) == [r.id for r in outbox_rows(engine)]
    finally:
        destination.close()
    got = take(amqp_url, queue, 5)
    assert [body["event_id"] for _, _, body in got] == ids
    rows = {r.event_id.hex: r for r in outbox_rows(engine)}
    for method, properties, body in got:
        check_body(body)
        row = rows[body["event_id"]]
        assert body == row.body
        assert method.routing_key == body["type"] == row.type
        assert properties.delivery_mode == 2
        assert properties.content_type == "application/json"
        assert properties.message_id == body["event_id"]
        assert row.published_at is not None and row.attempts == 1
    assert backlog(engine) == 0


@pytest.mark.postgres
def test_two_relays_at_once_send_each_event_once(pg_url: str, amqp_url: str) -> None:
    """FOR UPDATE SKIP LOCKED: two relays polling the same outbox never take the same row."""
    from syncd.db.engine import make_engine

    engine = make_engine(pg_url)
    exchange, queue = unique_name("ev"), unique_name("evq")
    bind_queue(amqp_url, exchange, queue)
    ids = write_events(engine, 600)
    relays = [
        EventRelay(engine, AmqpDestination(amqp_url, exchange), poll_seconds=0.05) for _ in range(2)
    ]
    sent: list[int] = []
    start = threading.Barrier(2)

    def run(relay: EventRelay) -> None:
        start.wait()
        sent.append(relay.run_pending())

    threads = [threading.Thread(target=run, args=(r,)) for r in relays]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for r in relays:
            r.destination.close()
        engine.dispose()
    got = take(amqp_url, queue, 600)
    delivered = [body["event_id"] for _, _, body in got]
    assert sorted(delivered) == sorted(ids), "an event sent twice or not at all"
    assert sum(sent) == 600 and min(sent) > 0, f"each relay should have taken some: {sent}"


def test_rabbitmq_outage_backs_off_logs_once_and_loses_nothing(
    engine: Engine, amqp_url: str
) -> None:
    exchange, queue = unique_name("ev"), unique_name("evq")
    bind_queue(amqp_url, exchange, queue)
    proxy = StoppableProxy(upstream_of(amqp_url))
    relay = EventRelay(engine, AmqpDestination(proxy.url(amqp_url), exchange), poll_seconds=0.05)
    with capture_logs() as logs:
        relay.start()
        try:
            first = write_events(engine, 2)
            _wait(lambda: backlog(engine) == 0, what="the first events to go out")
            proxy.stop()
            during = write_events(engine, 3)
            # Several tries fail while RabbitMQ is away (the attempts count them).
            _wait(
                lambda: sum(r.attempts for r in outbox_rows(engine) if r.published_at is None) >= 6,
                what="the relay to try during the outage",
            )
            assert backlog(engine) == 3
            proxy.start()
            _wait(lambda: backlog(engine) == 0, timeout=60, what="the backlog after the outage")
        finally:
            relay.stop()
            proxy.stop()
    got = take(amqp_url, queue, 5)
    assert [b["event_id"] for _, _, b in got] == first + during
    names = [e["event"] for e in logs]
    assert names.count("events_relay_waiting") == 1, names
    assert names.count("events_relay_resumed") == 1, names
    waiting = next(e for e in logs if e["event"] == "events_relay_waiting")
    assert waiting["unreachable"] == "rabbitmq"
    assert not [e for e in logs if e.get("log_level") in ("error", "critical")], logs
    assert relay._thread is not None and not relay._thread.is_alive()


def test_embedded_default_logs_each_event_and_leaves_rows_for_a_broker(
    engine: Engine, db_url: str, amqp_url: str
) -> None:
    settings = Settings(database_url=db_url, events_poll_seconds=0.05)
    old = write_events(engine, 1)  # before the process started: a previous one logged it
    relay = make_relay(settings, engine)
    assert relay is not None and isinstance(relay.destination, LogDestination)
    with capture_logs() as logs:
        relay.start()
        try:
            ids = write_events(engine, 3)
            _wait(
                lambda: len([e for e in logs if e["event"] == "event_out"]) >= 3,
                what="three event_out lines",
            )
            time.sleep(0.3)  # a few more polls: nothing is logged twice
        finally:
            relay.stop()
    lines = [e for e in logs if e["event"] == "event_out"]
    assert [e["event_id"] for e in lines] == ids
    for line in lines:
        check_body(line["body"])
        assert line["event_type"] == line["body"]["type"]
    assert all(r.published_at is None for r in outbox_rows(engine))
    assert EVENTS_BACKLOG._value.get() == 4

    # A broker configured later takes the whole backlog, the older event included.
    exchange, queue = unique_name("ev"), unique_name("evq")
    bind_queue(amqp_url, exchange, queue)
    later = make_relay(
        Settings(database_url=db_url, broker_url=amqp_url, events_exchange=exchange), engine
    )
    assert later is not None
    try:
        assert later.run_pending() == 4
    finally:
        later.destination.close()
    assert [b["event_id"] for _, _, b in take(amqp_url, queue, 4)] == old + ids


def test_events_off_means_no_relay(engine: Engine, db_url: str) -> None:
    assert make_relay(Settings(database_url=db_url, events_exchange=""), engine) is None


def test_published_rows_are_pruned_after_a_week(engine: Engine) -> None:
    from datetime import UTC, datetime, timedelta

    from syncd.events.relay import prune_published

    write_events(engine, 3)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        first, second, _ = [r.id for r in conn.execute(select(EventOutbox.id))]
        conn.execute(
            update(EventOutbox)
            .where(EventOutbox.id == first)
            .values(published_at=now - timedelta(days=8))
        )
        conn.execute(
            update(EventOutbox)
            .where(EventOutbox.id == second)
            .values(published_at=now - timedelta(days=6))
        )
    assert prune_published(engine, now=now) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EventOutbox)).scalar_one() == 2


def test_consumer_example_of_the_docs(engine: Engine, amqp_url: str) -> None:
    """docs/examples/consume_events.py, as a reader copies it, against a real relay: every
    event printed once, even the one the relay sends twice (at least once)."""
    exchange, queue = unique_name("ev"), unique_name("evq")
    example = DOCS / "examples" / "consume_events.py"
    assert example.name in (DOCS / "events.md").read_text()
    args = [amqp_url, "--exchange", exchange, "--queue", queue, "--count", "4"]
    consumer = subprocess.Popen(
        [sys.executable, str(example), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert consumer.stdout is not None
        assert json.loads(consumer.stdout.readline()) == {"ready": queue}
        ids = write_events(engine, 3)
        destination = AmqpDestination(amqp_url, exchange)
        try:
            relay_batch(engine, destination)
            # A relay that died after the confirm, before its commit, sends the row again.
            with engine.begin() as conn:
                conn.execute(
                    update(EventOutbox)
                    .where(EventOutbox.event_id == uuid.UUID(ids[0]))
                    .values(published_at=None)
                )
            relay_batch(engine, destination)
            ids += write_events(engine, 1)
            relay_batch(engine, destination)
        finally:
            destination.close()
        out, err = consumer.communicate(timeout=30)
    finally:
        if consumer.poll() is None:
            consumer.kill()
    printed = [json.loads(line) for line in out.splitlines()]
    assert [e["event_id"] for e in printed] == ids, err
    for event in printed:
        check_body(event)
    assert consumer.returncode == 0, err


def test_example_file_is_plain_pika() -> None:
    text = Path(DOCS / "examples" / "consume_events.py").read_text()
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert "import pika" in imports
    assert not [line for line in imports if "syncd" in line], imports


def test_documented_examples_match_their_schemas() -> None:
    blocks = re.findall(r"```json\n(.*?)```", (DOCS / "events.md").read_text(), flags=re.S)
    examples = [json.loads(block) for block in blocks]
    assert sorted(e["type"] for e in examples) == sorted(EVENT_TYPES)
    for example in examples:
        check_body(example)


def test_a_frozen_rabbitmq_does_not_hold_the_claim(engine: Engine, amqp_url: str) -> None:
    """A node that stops answering with TCP open (SIGSTOP, a partition): the publish gives up
    after its deadline instead of pika's heartbeat, the claim is released, the event waits."""
    from tests.support.freezable_proxy import FreezableProxy, via

    exchange, queue = unique_name("ev"), unique_name("evq")
    bind_queue(amqp_url, exchange, queue)
    proxy = FreezableProxy(upstream_of(amqp_url))
    destination = AmqpDestination(via(amqp_url, proxy.port), exchange, timeout=1.0)
    relay = EventRelay(engine, destination, poll_seconds=0.05)
    with capture_logs() as logs:
        relay.start()
        try:
            write_events(engine, 1)
            _wait(lambda: backlog(engine) == 0, what="the first event")
            proxy.freeze()
            [held] = write_events(engine, 1)
            _wait(
                lambda: any(e["event"] == "events_relay_waiting" for e in logs),
                timeout=20,
                what="the publish into the frozen broker to give up (heartbeat: ~60 s)",
            )
            [row] = [r for r in outbox_rows(engine) if r.event_id.hex == held]
            assert row.published_at is None and row.attempts >= 1
            proxy.thaw()
            _wait(lambda: backlog(engine) == 0, timeout=60, what="the event after the thaw")
        finally:
            relay.stop()
            proxy.close()
    waiting = next(e for e in logs if e["event"] == "events_relay_waiting")
    assert "did not confirm" in waiting["error"], waiting
    delivered = [b["event_id"] for _, _, b in take(amqp_url, queue, 2)]
    assert held in delivered  # perhaps twice: the frozen publish may arrive after all
