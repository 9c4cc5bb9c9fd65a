"""SYNCD_RUN_RETENTION_DAYS on SQLite and PostgreSQL: a claimed scheduler tick deletes the
sync runs that started before the cutoff, their changes with them; a tick that another
replica claimed deletes nothing, and 0 keeps every run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, func, insert, select

from syncd.config import Settings
from syncd.db.process_tables import SyncChange, SyncRun
from syncd.scheduler import run_tick

QUEUE = "syncd_test"
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def broker() -> StubBroker:
    stub = StubBroker()
    stub.declare_queue(QUEUE)
    return stub


def add_run(engine: Engine, started: datetime, changes: int = 2) -> str:
    run_uuid = uuid.uuid4()
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(SyncRun)
            .values(
                uuid=run_uuid,
                catalog_uuid=uuid.uuid4(),
                catalog_name="Spack",
                catalog_version="1",
                catalog_type="source_package",
                trigger="scheduler",
                command="update_catalog",
                message_id="m",
                started=started,
                finished=started,
                outcome="succeeded",
                validators={},
                counts={},
                change_count=changes,
                error="",
            )
            .returning(SyncRun.id)
        ).scalar_one()
        for n in range(changes):
            conn.execute(
                insert(SyncChange).values(
                    uuid=uuid.uuid4(),
                    run_id=run_id,
                    created=started,
                    change="package_added",
                    package_name=f"pkg{n}",
                    version="",
                    module_version="",
                    details={},
                )
            )
    return run_uuid.hex


def kept(engine: Engine) -> tuple[set[str], int]:
    with engine.connect() as conn:
        runs = {u.hex for u in conn.scalars(select(SyncRun.uuid))}
        changes = conn.execute(select(func.count()).select_from(SyncChange)).scalar_one()
    return runs, int(changes)


def test_old_runs_go_with_their_changes(engine: Engine, db_url: str, broker: StubBroker) -> None:
    settings = Settings(database_url=db_url, queue_name=QUEUE)  # the default: 180 days
    assert settings.run_retention_days == 180
    old = add_run(engine, NOW - 181 * DAY)
    recent = add_run(engine, NOW - 179 * DAY)

    first = run_tick(engine, broker, settings, now=NOW, tick_id="t1")
    assert first.runs_pruned == 1
    assert kept(engine) == ({recent}, 2)  # the old run's changes went with it
    assert old not in kept(engine)[0]

    again = run_tick(engine, broker, settings, now=NOW, tick_id="t1")  # claimed: does nothing
    assert not again.claimed and again.runs_pruned == 0

    add_run(engine, NOW - 400 * DAY)
    off = Settings(database_url=db_url, queue_name=QUEUE, run_retention_days=0)
    assert run_tick(engine, broker, off, now=NOW, tick_id="t2").runs_pruned == 0
    assert len(kept(engine)[0]) == 2
