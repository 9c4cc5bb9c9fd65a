"""SYNCD_RETENTION_DAYS on SQLite and PostgreSQL: the first claimed tick of a UTC day deletes
the auto-updated catalogs whose last success is too old, once, whichever replica ticks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, func, insert, select, update
from structlog.testing import capture_logs

from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.db.locks import catalog_transaction
from syncd.db.tables import Catalog, Package
from syncd.readmodel import refresh_read_model
from syncd.scheduler import run_tick
from tests.integration.scheduler.helpers import add_catalog, stub_messages, tick_rows
from tests.support.derived import assert_no_orphans, derived_packages

QUEUE = "syncd_test"
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def broker() -> StubBroker:
    stub = StubBroker()
    stub.declare_queue(QUEUE)
    return stub


def settings_for(db_url: str, retention_days: int = 90) -> Settings:
    return Settings(database_url=db_url, queue_name=QUEUE, retention_days=retention_days)


def add(
    engine: Engine,
    name: str,
    *,
    success: datetime | None,
    attempt: datetime | None = None,
    enabled: bool = True,
) -> str:
    """A catalog last attempted at `attempt` (default: its success) with one package."""
    catalog_uuid = add_catalog(
        engine, name, "1", enabled=enabled, last_attempt=attempt if attempt else success
    )
    with engine.begin() as conn:
        conn.execute(
            update(Catalog)
            .where(Catalog.uuid == uuid.UUID(catalog_uuid))
            .values(last_successful_update=success)
        )
        catalog_id = conn.execute(
            select(Catalog.id).where(Catalog.uuid == uuid.UUID(catalog_uuid))
        ).scalar_one()
        conn.execute(insert(Package).values(catalog_id=catalog_id, name=f"{name}-pkg"))
        refresh_read_model(conn, catalog_id, None)  # its derived rows, as a sync writes them
    return catalog_uuid


def names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(Catalog.name)).scalars())


def package_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Package)).scalar_one())


def test_expired_catalogs_go_and_the_others_stay(
    engine: Engine, db_url: str, broker: StubBroker
) -> None:
    settings = settings_for(db_url)
    old_success = NOW - 91 * DAY
    add(engine, "Expired", success=old_success)
    # Failing for months: attempted yesterday, last success long ago. Expired too, and not
    # enqueued by the tick that deletes it.
    add(engine, "Failing", success=old_success, attempt=NOW - DAY)
    add(engine, "Fresh", success=NOW - 89 * DAY)
    add(engine, "NeverAttempted", success=None)
    add(engine, "Pinned", success=old_success, enabled=False)  # auto-update off
    add(engine, "NeverSucceeded", success=None, attempt=NOW - 200 * DAY)

    with capture_logs() as logs:
        result = run_tick(engine, broker, settings, now=NOW, tick_id="t1")

    assert sorted(ref.name for ref in result.deleted) == ["Expired", "Failing"]
    assert names(engine) == {"Fresh", "NeverAttempted", "Pinned", "NeverSucceeded"}
    assert package_count(engine) == 4  # the deleted catalogs' packages went with them
    with engine.connect() as conn:
        kept = set(conn.execute(select(Package.id)).scalars())
    # Their derived rows too (packages without versions have no facets).
    assert derived_packages(engine) == {
        "package_read_model": kept,
        "package_facet": set(),
        "package_search": kept,
    }
    assert_no_orphans(engine)
    deletions = [e for e in logs if e["event"] == "catalog_retention_deleted"]
    assert [(e["catalog_name"], e["catalog_version"]) for e in deletions] == [
        ("Expired", "1"),
        ("Failing", "1"),
    ]
    assert deletions[0]["last_successful_update"] == old_success.isoformat()
    assert deletions[0]["retention_days"] == 90
    # The tick then enqueued only what is left and due: nothing of the deleted ones.
    assert {ref.name for ref in result.enqueued} == {"Fresh", "NeverAttempted", "NeverSucceeded"}
    assert len(stub_messages(broker, QUEUE)) == 3


def test_once_a_day_whichever_replica_ticks(
    engine: Engine, db_url: str, broker: StubBroker
) -> None:
    settings = settings_for(db_url)
    add(engine, "First", success=NOW - 100 * DAY)
    assert [r.name for r in run_tick(engine, broker, settings, now=NOW, tick_id="a").deleted] == [
        "First"
    ]

    # Later the same UTC day another catalog expires: neither a later tick of this replica
    # nor a tick of another replica (its own engine and broker) deletes it today.
    add(engine, "Second", success=NOW - 90 * DAY - timedelta(minutes=30))
    later = run_tick(engine, broker, settings, now=NOW + timedelta(hours=20), tick_id="b")
    assert later.claimed and later.deleted == []
    other_engine = make_engine(db_url)
    try:
        other = run_tick(
            other_engine,
            StubBroker(),
            settings,
            now=NOW + timedelta(hours=20, minutes=59),
            tick_id="c",
        )
    finally:
        other_engine.dispose()
    assert other.claimed and other.deleted == []
    assert "Second" in names(engine)

    # The next day's first tick does.
    tomorrow = run_tick(engine, broker, settings, now=NOW + DAY, tick_id="d")
    assert [ref.name for ref in tomorrow.deleted] == ["Second"]
    claims = [row["tick_id"] for row in tick_rows(engine) if row["tick_id"].startswith("ret")]
    assert claims == ["retention 2026-11-27", "retention 2026-11-28"]


def test_off_by_default(engine: Engine, db_url: str, broker: StubBroker) -> None:
    settings = settings_for(db_url, 0)
    add(engine, "Ancient", success=NOW - 1000 * DAY)
    result = run_tick(engine, broker, settings, now=NOW, tick_id="t1")
    assert result.deleted == []
    assert names(engine) == {"Ancient"}
    assert [row["tick_id"] for row in tick_rows(engine)] == ["t1"]


def test_a_catalog_being_synced_is_left_for_another_day(pg_url: str, broker: StubBroker) -> None:
    engine = make_engine(pg_url)
    try:
        catalog_uuid = add(engine, "Syncing", success=NOW - 100 * DAY)
        with engine.connect() as conn:
            catalog_id = conn.execute(
                select(Catalog.id).where(Catalog.uuid == uuid.UUID(catalog_uuid))
            ).scalar_one()
        # A worker's sync holds the catalog's lock (it may succeed and make it fresh).
        with catalog_transaction(engine, catalog_id, timeout=1):
            result = run_tick(engine, broker, settings_for(pg_url), now=NOW, tick_id="t1")
        assert result.deleted == []
        assert names(engine) == {"Syncing"}
    finally:
        engine.dispose()
