"""Retention, as Waldur has it: once a day, delete the catalogs nobody keeps fresh any more.

A catalog goes when its auto-update is on, it was attempted, and its last successful update
is older than SYNCD_RETENTION_DAYS (0 = off, the default: this deletes data; Waldur's
SOFTWARE_CATALOG_RETENTION_DAYS is 90). A catalog that was never attempted (just created,
or waiting for its first import) or whose auto-update is off (kept on purpose, say a pinned
old version) is never deleted, nor is one that never succeeded (it has no age to measure).

Once a day, not every tick: the tick that claimed its own id also claims the day's
retention id in `scheduler_tick`, so whichever replica ticks first that UTC day deletes,
and later ticks of the day and other replicas find the claim taken.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, select

from syncd.config import Settings
from syncd.db.locks import try_lock_catalog
from syncd.db.tables import Catalog
from syncd.logging import get_logger
from syncd.scheduler.results import CatalogRef

log = get_logger(__name__)


def retention_claim_id(now: datetime) -> str:
    """The claim of the day `now` falls on (UTC); fits scheduler_tick.tick_id's 64."""
    return f"retention {now.astimezone(UTC).date().isoformat()}"


def _expired(cutoff: datetime) -> list[ColumnElement[bool]]:
    # Checked again in the DELETE itself: a sync that succeeded since the SELECT saves it.
    return [
        Catalog.auto_update_enabled.is_(True),
        Catalog.last_update_attempt.is_not(None),
        Catalog.last_successful_update.is_not(None),
        Catalog.last_successful_update < cutoff,
    ]


def delete_expired(engine: Engine, settings: Settings, now: datetime) -> list[CatalogRef]:
    """Delete the catalogs expired at `now`; the caller has claimed the day. Returns them."""
    cutoff = now - timedelta(days=settings.retention_days)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Catalog.id,
                Catalog.uuid,
                Catalog.name,
                Catalog.version,
                Catalog.last_successful_update,
            )
            .where(*_expired(cutoff))
            .order_by(Catalog.name, Catalog.version)
        ).all()
    deleted = []
    for row in rows:
        with engine.begin() as conn:
            if not _delete_one(conn, row.id, cutoff):
                continue
        ref = CatalogRef(uuid=str(row.uuid), name=row.name, version=row.version)
        deleted.append(ref)
        last = row.last_successful_update
        log.info(
            "catalog_retention_deleted",
            catalog_uuid=ref.uuid,
            catalog_name=ref.name,
            catalog_version=ref.version,
            last_successful_update=(last if last.tzinfo else last.replace(tzinfo=UTC)).isoformat(),
            retention_days=settings.retention_days,
        )
    return deleted


def _delete_one(conn: Connection, catalog_id: Any, cutoff: datetime) -> bool:
    # On PostgreSQL a sync of this catalog may be running (it holds the catalog's lock):
    # leave it, it may well succeed; the next day decides. SQLite's single writer makes the
    # DELETE wait for such a sync, and the re-check then sees its success.
    if conn.dialect.name == "postgresql" and not try_lock_catalog(conn, catalog_id):
        return False
    result = conn.execute(delete(Catalog).where(Catalog.id == catalog_id, *_expired(cutoff)))
    return result.rowcount == 1
