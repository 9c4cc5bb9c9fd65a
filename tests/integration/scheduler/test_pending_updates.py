"""An update the scheduler enqueued and no worker started yet is not enqueued again, until
it is one refresh interval old (presumed lost); on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
from alembic import command
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, text

from syncd.broker import make_broker
from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.db.migrate import alembic_config, upgrade
from syncd.scheduler import (
    REASON_ENQUEUED,
    REASON_RECENT,
    TickResult,
    run_tick,
    start_in_process,
)
from syncd.service import update_catalog
from tests.integration.scheduler.helpers import (
    add_catalog,
    catalog_row,
    drain,
    start_attempt,
    stub_messages,
    tick_rows,
)
from tests.support.services import postgres_database
from tests.support.toy_adapter import ToyAdapter

NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)  # the refresh interval of these tests


def uuids(refs: list[object]) -> set[str]:
    return {ref.uuid for ref in refs}  # type: ignore[attr-defined]


def reasons(result: TickResult) -> dict[str, str]:
    return {ref.uuid: reason for ref, reason in result.skipped}


@pytest.fixture
def mq_settings(db_url: str, amqp_url: str) -> Settings:
    # A queue of the test's own in the run's vhost: nothing consumes it.
    return Settings(
        database_url=db_url,
        broker_url=amqp_url,
        queue_name=f"pending_{secrets.token_hex(4)}",
        refresh_interval_seconds=int(HOUR.total_seconds()),
    )


@pytest.fixture
def rabbit(mq_settings: Settings) -> Iterator[dramatiq.Broker]:
    broker = make_broker(mq_settings)
    yield broker
    broker.close()


class Ticker:
    """run_tick at given offsets from NOW, each its own tick id."""

    def __init__(self, engine: Engine, broker: dramatiq.Broker, settings: Settings) -> None:
        self.engine, self.broker, self.settings = engine, broker, settings

    def at(self, offset: timedelta) -> TickResult:
        now = NOW + offset
        return run_tick(self.engine, self.broker, self.settings, now=now, tick_id=now.isoformat())


@pytest.mark.rabbitmq
def test_without_workers_each_due_catalog_waits_in_the_queue_once(
    engine: Engine, rabbit: dramatiq.Broker, mq_settings: Settings, amqp_url: str
) -> None:
    queue = mq_settings.queue_name
    never = add_catalog(engine, "EESSI", "2023.06")
    stale = add_catalog(engine, "Spack", "2026.01.01", last_attempt=NOW - 2 * HOUR)
    ticker = Ticker(engine, rabbit, mq_settings)

    # A tick a minute for most of an interval, workers down: the first tick enqueues, the
    # others see the updates still waiting.
    first = ticker.at(timedelta(0))
    assert uuids(first.enqueued) == {never, stale}
    later = [ticker.at(minute * MINUTE) for minute in range(1, 58)]
    assert all(result.enqueued == [] for result in later)
    assert reasons(later[-1]) == {never: REASON_ENQUEUED, stale: REASON_ENQUEUED}
    assert [row["enqueued"] for row in tick_rows(engine)] == [2] + [0] * 57
    assert drain(amqp_url, queue) == {never: 1, stale: 1}

    # One refresh interval after the enqueue nobody started it: presumed lost, enqueued once
    # more, and again not repeated at the following ticks.
    bound = ticker.at(HOUR)
    assert uuids(bound.enqueued) == uuids(bound.presumed_lost) == {never, stale}
    assert ticker.at(HOUR + MINUTE).enqueued == []
    assert drain(amqp_url, queue) == {never: 1, stale: 1}

    # A worker takes both: from then on the attempt, not the enqueue, decides.
    started = NOW + HOUR + timedelta(seconds=5)
    for catalog in (never, stale):
        start_attempt(engine, catalog, started)
    after_start = ticker.at(HOUR + 2 * MINUTE)
    assert after_start.enqueued == []
    assert reasons(after_start) == {never: REASON_RECENT, stale: REASON_RECENT}
    due_again = ticker.at(2 * HOUR)
    assert uuids(due_again.enqueued) == {never, stale}
    assert due_again.presumed_lost == []
    assert drain(amqp_url, queue) == {never: 1, stale: 1}


def test_the_stamp_is_the_tick_time_and_leaves_modified_alone(engine: Engine) -> None:
    settings = Settings(queue_name="q", refresh_interval_seconds=3600)
    broker = StubBroker()
    broker.declare_queue("q")
    catalog = add_catalog(engine, "EESSI", "2023.06")
    before = catalog_row(engine, catalog)

    Ticker(engine, broker, settings).at(timedelta(0))

    after = catalog_row(engine, catalog)
    assert after.update_enqueued_at.replace(tzinfo=UTC) == NOW
    # Scheduler bookkeeping is no change an API client could see.
    assert after.modified == before.modified
    assert after.last_update_attempt is None


def test_a_worker_that_ran_the_update_ends_the_wait(engine: Engine) -> None:
    settings = Settings(queue_name="q", refresh_interval_seconds=3600)
    broker = StubBroker()
    broker.declare_queue("q")
    catalog = add_catalog(engine, "Toy", "1.0", catalog_type="package_manager")
    # The tick is the fire time, a moment before the worker's own clock stamps the attempt.
    tick_time = datetime.now(UTC) - timedelta(seconds=1)
    run_tick(engine, broker, settings, now=tick_time, tick_id="t1")
    assert stub_messages(broker, "q") == {catalog: 1}

    update_catalog(engine, {"Toy": ToyAdapter(settings)}, None, catalog_uuid=catalog)

    row = catalog_row(engine, catalog)
    assert row.last_update_attempt > row.update_enqueued_at
    soon = run_tick(engine, broker, settings, now=tick_time + MINUTE, tick_id="t2")
    assert reasons(soon) == {catalog: REASON_RECENT}
    next_interval = run_tick(engine, broker, settings, now=tick_time + HOUR, tick_id="t3")
    assert uuids(next_interval.enqueued) == {catalog}
    assert next_interval.presumed_lost == []


# A schedule that does not fire during a test: starting the scheduler is what is tested.
NOT_NOW = "0 0 1 1 *"


def test_an_in_process_queue_forgets_what_an_earlier_process_enqueued(engine: Engine) -> None:
    # `syncd run` with the in-process queue restarted while an update waited in its queue:
    # that message died with the old process, so the new one enqueues at its first tick.
    settings = Settings(queue_name="q", tick_cron=NOT_NOW, refresh_interval_seconds=3600)
    broker = StubBroker()
    broker.declare_queue("q")
    restart = datetime.now(UTC)
    waiting = add_catalog(engine, "EESSI", "2023.06", enqueued_at=restart - MINUTE)
    start_in_process(settings, engine, broker).shutdown(wait=True)

    first = run_tick(engine, broker, settings, now=restart + MINUTE, tick_id="t1")
    assert uuids(first.enqueued) == {waiting}
    assert stub_messages(broker, "q") == {waiting: 1}


@pytest.mark.rabbitmq
def test_rabbitmq_keeps_what_an_earlier_process_enqueued(
    engine: Engine, rabbit: dramatiq.Broker, mq_settings: Settings
) -> None:
    # A RabbitMQ queue outlives the process: a restarted scheduler still waits for the update.
    settings = dataclasses.replace(mq_settings, tick_cron=NOT_NOW)
    restart = datetime.now(UTC)
    waiting = add_catalog(engine, "EESSI", "2023.06", enqueued_at=restart - MINUTE)
    start_in_process(settings, engine, rabbit).shutdown(wait=True)

    first = run_tick(engine, rabbit, settings, now=restart + MINUTE, tick_id="t1")
    assert first.enqueued == [] and reasons(first) == {waiting: REASON_ENQUEUED}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0003_adds_an_empty_stamp_to_existing_catalogs(
    backend: str, tmp_path: Path
) -> None:
    def check(url: str) -> None:
        upgrade(url, "0002")
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO catalog (uuid, created, modified, name, version,"
                        " catalog_type, source_url, description, metadata,"
                        " auto_update_enabled, update_errors, package_count, version_count,"
                        " target_count, upstream_validators, content_hash) VALUES"
                        " (:uuid, :now, :now, 'EESSI', '2023.06', 'binary_runtime', '', '',"
                        " '{}', true, '', 0, 0, 0, '{}', '')"
                    ),
                    {"uuid": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "now": NOW},
                )
            upgrade(url)
            with engine.connect() as conn:
                stamps = conn.execute(text("SELECT update_enqueued_at FROM catalog")).all()
            assert stamps == [(None,)]
            command.downgrade(alembic_config(url), "0002")
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM catalog")).scalar_one() == 1
            upgrade(url)
        finally:
            engine.dispose()

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    else:
        with postgres_database("syncd_migrate") as url:
            check(url)
