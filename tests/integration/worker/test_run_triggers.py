"""Who asked for a run (sync_run.trigger) travels with the message: a worker on the real
RabbitMQ and PostgreSQL records each trigger and the message id, `message` when the message
does not say, and dead-letters an unknown trigger; a failed attempt and its retry are two
runs. The embedded queue of `syncd run` (SQLite) records the API's and the scheduler's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd.broker import make_broker, worker_resources
from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.db.migrate import upgrade
from syncd.db.process_tables import EventOutbox, SyncRun
from syncd.errors import UpstreamError
from syncd.publish import publish_import
from syncd.scheduler import run_tick
from syncd.worker import start_in_process
from tests.integration.worker.conftest import StartWorker
from tests.integration.worker.fakes import FakeAdapter, ShrinkingAdapter, catalog_row, wait_until
from tests.integration.worker.rabbit import envelope, message_count, publish_raw

WAIT = 30.0


def runs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(SyncRun).order_by(SyncRun.id)))


def events(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(b) for b in conn.scalars(select(EventOutbox.body).order_by(EventOutbox.id))]


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_each_trigger_and_the_message_id_are_recorded(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    fake = FakeAdapter()
    start_worker({"Fake": fake})
    queue, url = mq_settings.queue_name, mq_settings.broker_url

    imported = envelope(queue, "import_catalog", name="Fake")  # no trigger: any producer
    publish_raw(url, queue, imported)
    wait_until(lambda: len(runs(pg_engine)) == 1, WAIT)
    [run] = runs(pg_engine)
    assert (run.trigger, run.outcome, run.message_id) == (
        "message",
        "succeeded",
        imported["message_id"],
    )
    catalog_uuid = run.catalog_uuid.hex

    sent = []
    for trigger in ("api", "scheduler", "cli", "message"):
        message = envelope(queue, "update_catalog", catalog_uuid=catalog_uuid, trigger=trigger)
        sent.append((trigger, message["message_id"]))
        publish_raw(url, queue, message)
        wait_until(lambda: len(runs(pg_engine)) == 1 + len(sent), WAIT)
    updates = runs(pg_engine)[1:]
    assert [(r.trigger, r.message_id) for r in updates] == sent
    # Upstream answered "not modified" (the same ETag): runs, with nothing written.
    assert {(r.outcome, r.change_count) for r in updates} == {("unchanged", 0)}
    assert [e["type"] for e in events(pg_engine)] == ["catalog.synced"]

    bad = envelope(queue, "update_catalog", catalog_uuid=catalog_uuid, trigger="cron")
    publish_raw(url, queue, bad)
    wait_until(lambda: message_count(url, f"{queue}.XQ") == 1, WAIT)
    assert len(runs(pg_engine)) == 5  # an invalid message is no attempt


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_a_failed_attempt_and_its_retry_are_two_runs(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    fake = FakeAdapter()
    start_worker({"Fake": fake})
    queue, url = mq_settings.queue_name, mq_settings.broker_url
    publish_raw(url, queue, envelope(queue, "import_catalog", name="Fake", trigger="api"))
    wait_until(lambda: len(runs(pg_engine)) == 1, WAIT)
    catalog_uuid = runs(pg_engine)[0].catalog_uuid.hex

    fake.generation = 2
    fake.failures = [UpstreamError("HTTP 503 from upstream", transient=True, status=503)]
    update = envelope(queue, "update_catalog", catalog_uuid=catalog_uuid, trigger="scheduler")
    publish_raw(url, queue, update)
    wait_until(lambda: len(runs(pg_engine)) == 3, WAIT)
    failed, retried = runs(pg_engine)[1:]
    assert (failed.outcome, failed.trigger, failed.message_id) == (
        "failed",
        "scheduler",
        update["message_id"],
    )
    assert failed.error.startswith("HTTP 503 from upstream") and failed.change_count == 0
    assert (retried.outcome, retried.message_id) == ("succeeded", update["message_id"])
    assert retried.change_count > 0 and retried.uuid != failed.uuid
    assert catalog_row(pg_engine, name="Fake").update_errors == ""
    types = [(e["type"], e["payload"]["run_uuid"]) for e in events(pg_engine)]
    assert types[1:] == [
        ("catalog.sync_failed", failed.uuid.hex),
        ("catalog.synced", retried.uuid.hex),
    ]
    assert events(pg_engine)[1]["payload"]["will_retry"] is True


def test_the_embedded_queue_records_the_api_and_the_scheduler(tmp_path: Path) -> None:
    """`syncd run`'s in-process queue on SQLite: what the API and the scheduler publish."""
    url = f"sqlite:///{tmp_path / 'syncd.sqlite3'}"
    upgrade(url)
    settings = Settings(database_url=url, queue_name="syncd", refresh_interval_seconds=60)
    engine = make_engine(url)
    broker = make_broker(settings, engine=engine)
    fake = FakeAdapter()
    worker_resources(broker).provide(adapters={"Fake": fake}, fetcher=object())
    worker = start_in_process(settings, broker, engine)
    try:
        publish_import(broker, settings, name="Fake", trigger="api")
        wait_until(lambda: len(runs(engine)) == 1, WAIT)
        fake.generation = 2
        due = datetime.now(UTC) + timedelta(hours=1)  # past the refresh interval
        run_tick(engine, broker, settings, now=due, tick_id="t")
        wait_until(lambda: len(runs(engine)) == 2, WAIT)
    finally:
        worker.stop(timeout=10_000)
        engine.dispose()
    imported, refreshed = runs(make_engine(url))
    assert (imported.trigger, imported.outcome) == ("api", "succeeded")
    assert (refreshed.trigger, refreshed.outcome) == ("scheduler", "succeeded")
    assert imported.message_id and refreshed.message_id != imported.message_id


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_a_refused_update_is_one_run_and_force_in_the_message_lets_it_through(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    fake = ShrinkingAdapter()
    start_worker({"Fake": fake})
    queue, url = mq_settings.queue_name, mq_settings.broker_url
    publish_raw(url, queue, envelope(queue, "import_catalog", name="Fake"))
    wait_until(lambda: len(runs(pg_engine)) == 1, WAIT)
    catalog_uuid = runs(pg_engine)[0].catalog_uuid.hex
    fake.generation = 2  # one package of the five left upstream

    refused = envelope(queue, "update_catalog", catalog_uuid=catalog_uuid, trigger="api")
    publish_raw(url, queue, refused)
    wait_until(lambda: message_count(url, f"{queue}.XQ") == 1, WAIT)
    run = runs(pg_engine)[-1]
    assert (run.outcome, run.trigger, run.message_id) == ("refused", "api", refused["message_id"])
    assert "upstream would remove 4 of 5 packages (80%)" in run.error
    assert events(pg_engine)[-1]["payload"]["will_retry"] is False
    assert len(runs(pg_engine)) == 2  # not retried

    forced = envelope(queue, "update_catalog", catalog_uuid=catalog_uuid, force=True)
    publish_raw(url, queue, forced)
    wait_until(lambda: len(runs(pg_engine)) == 3, WAIT)
    run = runs(pg_engine)[-1]
    assert (run.outcome, run.trigger) == ("succeeded", "message")
    assert run.counts["packages"]["deleted"] == 4
    assert catalog_row(pg_engine, name="Fake").package_count == 1
