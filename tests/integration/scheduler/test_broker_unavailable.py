"""A tick stops publishing once the broker is found unavailable (a publish timed out or could
not connect): the other due catalogs are skipped as "not tried", so a frozen broker costs a
tick one publish deadline instead of one per due catalog. A failure of one message does not
stop the others. On SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pika.exceptions
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import ConnectionClosed
from sqlalchemy import Engine, select

from syncd.broker import make_broker
from syncd.config import Settings
from syncd.db.tables import Catalog
from syncd.publish import PublishTimeout, publish_update
from syncd.scheduler import (
    NOT_TRIED,
    REASON_DISABLED,
    REASON_PUBLISH_FAILED,
    TickResult,
    run_tick,
)
from tests.integration.scheduler.helpers import (
    FakeEessi,
    ScriptedBroker,
    add_catalog,
    drain,
    skipped_count,
    stub_messages,
    timing_out_broker,
)
from tests.support.freezable_proxy import FreezableProxy, proxy_fixture, via  # noqa: F401
from tests.support.services import unique_name

QUEUE = "syncd_test"
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DEADLINE = 0.5
# What proves the tick stopped is the count of publishes tried; the time bounds only add
# that it was well under trying every due catalog (one deadline each: 8 here, 4 s), with
# room for a shared, loaded 2-core machine.
SLACK = 2.5
NOT_TRIED_REASON = f"{REASON_PUBLISH_FAILED}: {NOT_TRIED}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        queue_name=QUEUE,
        refresh_interval_seconds=3600,
        publish_timeout_seconds=DEADLINE,
    )


def due_catalogs(engine: Engine, count: int) -> list[str]:
    """`count` due catalogs, in the order the tick publishes them (by name, version)."""
    return [add_catalog(engine, "EESSI", f"2023.{month:02}") for month in range(1, count + 1)]


def reasons(result: TickResult) -> dict[str, str]:
    return {ref.uuid: reason for ref, reason in result.skipped}


def timed_tick(
    engine: Engine, broker: object, settings: Settings, **kwargs: object
) -> tuple[TickResult, float]:
    started = time.monotonic()
    result = run_tick(engine, broker, settings, now=NOW, tick_id="t1", **kwargs)  # type: ignore[arg-type]
    return result, time.monotonic() - started


def test_a_publish_timeout_stops_the_tick(engine: Engine, settings: Settings) -> None:
    first, *rest = due_catalogs(engine, 8)
    disabled = add_catalog(engine, "Spack", "1", enabled=False)
    broker = timing_out_broker()
    failed_before = skipped_count(REASON_PUBLISH_FAILED)
    disabled_before = skipped_count(REASON_DISABLED)

    result, seconds = timed_tick(engine, broker, settings)

    assert broker.attempts == [first]  # exactly one publish tried
    assert result.broker_unavailable and result.enqueued == []
    assert reasons(result) == {
        first: (
            f"{REASON_PUBLISH_FAILED}: RabbitMQ did not confirm update_catalog on queue "
            f"{QUEUE!r} within {DEADLINE:g} s; the command may or may not have been queued"
        ),
        **dict.fromkeys(rest, NOT_TRIED_REASON),
        disabled: REASON_DISABLED,
    }
    assert DEADLINE - 0.05 <= seconds <= DEADLINE + SLACK
    assert skipped_count(REASON_PUBLISH_FAILED) - failed_before == 8
    assert skipped_count(REASON_DISABLED) - disabled_before == 1

    # Nothing was stamped as enqueued: with the broker back, the next tick sends them all.
    stub = StubBroker()
    stub.declare_queue(QUEUE)
    later = run_tick(engine, stub, settings, now=NOW + timedelta(minutes=1), tick_id="t2")
    assert stub_messages(stub, QUEUE) == dict.fromkeys([first, *rest], 1)
    assert not later.broker_unavailable


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_stops_the_tick(engine: Engine, settings: Settings) -> None:
    # The real RabbitMQ broker of syncd, pointed at a port nobody listens on.
    url = f"amqp://guest:guest@127.0.0.1:{closed_port()}/"
    refused = Settings(**{**settings.__dict__, "broker_url": url})
    first, *rest = due_catalogs(engine, 3)
    broker = make_broker(refused)
    try:
        result = run_tick(engine, broker, refused, now=NOW, tick_id="t1")
    finally:
        broker.close()

    assert result.broker_unavailable and result.enqueued == []
    found = reasons(result)
    assert found.pop(first).startswith(
        f"{REASON_PUBLISH_FAILED}: Publishing update_catalog to queue {QUEUE!r} failed: "
        "ConnectionClosed"
    )
    assert found == dict.fromkeys(rest, NOT_TRIED_REASON)


# What SyncdRabbitmqBroker.enqueue_within raises. Dramatiq retries a pika channel or
# connection error a few times and then raises its ConnectionClosed around the last one.
UNAVAILABLE: dict[str, Callable[[], Exception]] = {
    "timeout": lambda: PublishTimeout("RabbitMQ did not confirm the publish in time"),
    "connection lost": lambda: ConnectionClosed(pika.exceptions.StreamLostError("reset")),
    "authentication": lambda: ConnectionClosed(
        pika.exceptions.ProbableAuthenticationError("ACCESS_REFUSED")
    ),
    "socket": lambda: ConnectionRefusedError(111, "Connection refused"),
}
# The broker answered this publish: the next one may well go through, and costs little.
ONE_MESSAGE: dict[str, Callable[[], Exception]] = {
    "too large": lambda: ConnectionClosed(
        pika.exceptions.ChannelClosedByBroker(406, "PRECONDITION_FAILED - message size")
    ),
    "nacked": lambda: ConnectionClosed(pika.exceptions.NackError([])),
    "unroutable": lambda: ConnectionClosed(pika.exceptions.UnroutableError([])),
    "middleware": lambda: ValueError("refused by a middleware"),
}


@pytest.mark.parametrize("kind", sorted(UNAVAILABLE))
def test_broker_failures_stop_the_tick(engine: Engine, settings: Settings, kind: str) -> None:
    first, second, third = due_catalogs(engine, 3)
    broker = ScriptedBroker(lambda _uuid: UNAVAILABLE[kind]())
    quick = Settings(**{**settings.__dict__, "publish_timeout_seconds": 0.1})

    result = run_tick(engine, broker, quick, now=NOW, tick_id="t1")  # type: ignore[arg-type]

    assert broker.attempts == [first]
    assert result.broker_unavailable
    assert reasons(result)[first].startswith(f"{REASON_PUBLISH_FAILED}: ")
    assert reasons(result)[first] != NOT_TRIED_REASON
    assert {reasons(result)[second], reasons(result)[third]} == {NOT_TRIED_REASON}


@pytest.mark.parametrize("kind", sorted(ONE_MESSAGE))
def test_a_failure_of_one_message_does_not_stop_the_others(
    engine: Engine, settings: Settings, kind: str
) -> None:
    first, second, third = due_catalogs(engine, 3)
    broker = ScriptedBroker(lambda uuid: ONE_MESSAGE[kind]() if uuid == first else None)

    result = run_tick(engine, broker, settings, now=NOW, tick_id="t1")  # type: ignore[arg-type]

    assert broker.attempts == [first, second, third]
    assert broker.accepted == [second, third]
    assert not result.broker_unavailable
    assert [c.uuid for c in result.enqueued] == [second, third]
    assert list(reasons(result)) == [first]


def follow(settings: Settings) -> Settings:
    return Settings(**{**settings.__dict__, "follow_upstream": True})


def catalog_versions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(Catalog.version)))


def test_follow_upstream_is_not_tried_after_a_timeout(engine: Engine, settings: Settings) -> None:
    (due,) = due_catalogs(engine, 1)
    adapter = FakeEessi(["2025.06", "2023.01"])
    broker = timing_out_broker()

    result, seconds = timed_tick(engine, broker, follow(settings), adapters={"EESSI": adapter})

    assert broker.attempts == [due]
    assert result.not_followed == {"EESSI": NOT_TRIED}
    assert adapter.calls == 0  # no upstream list downloaded for catalogs nobody can enqueue
    assert catalog_versions(engine) == {"2023.01"}
    assert seconds <= DEADLINE + SLACK


def test_follow_upstream_stops_at_its_first_timeout(engine: Engine, settings: Settings) -> None:
    add_catalog(engine, "EESSI", "2023.06", last_attempt=NOW)  # not due
    adapter = FakeEessi(["2025.06-001", "2025.06", "2024.06", "2023.06"])
    broker = timing_out_broker()
    failed_before = skipped_count(REASON_PUBLISH_FAILED)

    result, seconds = timed_tick(engine, broker, follow(settings), adapters={"EESSI": adapter})

    assert len(broker.attempts) == 1  # the oldest new version, 2024.06
    assert [ref.label for ref, _ in result.skipped][-1] == "EESSI 2024.06"
    assert result.skipped[-1][1].startswith(f"{REASON_PUBLISH_FAILED}: RabbitMQ did not confirm")
    assert result.created == []
    assert result.not_followed == {"EESSI": NOT_TRIED}
    # The row of the failed publish is gone again, and the newer versions were not created:
    # the next tick follows all three.
    assert catalog_versions(engine) == {"2023.06"}
    assert skipped_count(REASON_PUBLISH_FAILED) - failed_before == 1
    assert seconds <= DEADLINE + SLACK


# --- a real frozen RabbitMQ ---------------------------------------------------------------


@pytest.mark.rabbitmq
def test_a_frozen_rabbitmq_costs_the_tick_one_deadline(
    engine: Engine, settings: Settings, amqp_url: str, proxy: FreezableProxy
) -> None:
    deadline = 1.0
    frozen = Settings(
        **{
            **settings.__dict__,
            "broker_url": via(amqp_url, proxy.port),
            "queue_name": unique_name("frozen_tick"),
            "publish_timeout_seconds": deadline,
        }
    )
    first, *rest = due_catalogs(engine, 6)
    broker = make_broker(frozen)
    try:
        # A scheduler that has been publishing: its connection is open when the broker freezes.
        publish_update(broker, frozen, catalog_uuid="0" * 32)
        proxy.freeze()
        try:
            result, seconds = timed_tick(engine, broker, frozen)
        finally:
            proxy.thaw()
        assert result.broker_unavailable and result.enqueued == []
        assert reasons(result)[first].startswith(
            f"{REASON_PUBLISH_FAILED}: RabbitMQ did not confirm update_catalog"
        )
        assert {reasons(result)[uuid] for uuid in rest} == {NOT_TRIED_REASON}
        assert deadline - 0.05 <= seconds < 6 * deadline  # not one deadline per catalog

        # Thawed: the next tick publishes every due catalog.
        later = run_tick(engine, broker, frozen, now=NOW + timedelta(minutes=1), tick_id="t2")
        assert {c.uuid for c in later.enqueued} == {first, *rest}
    finally:
        broker.close()
    queued = drain(amqp_url, frozen.queue_name)
    # The frozen publish reached the proxy and may or may not have been queued after the thaw.
    assert queued[first] in {1, 2}
    assert all(queued[uuid] == 1 for uuid in rest)
