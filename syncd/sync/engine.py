"""The entry point, sync_catalog: one transaction under the catalog's lock around whichever
write path fits, so that callers see one all-or-nothing operation with one error vocabulary.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from syncd import cache_events
from syncd.config import DEFAULT_MAX_FIELD_CHARS
from syncd.db.locks import catalog_transaction
from syncd.db.tables import Catalog
from syncd.domain import CatalogSnapshot, SyncStats
from syncd.errors import PermanentError, SyncdError, TransientError, UnknownCatalogError
from syncd.readmodel import refresh_read_model
from syncd.sync.catalog_row import _read_catalog, _update_catalog
from syncd.sync.diff import _Differ, _is_empty
from syncd.sync.direct_copy import _direct_import
from syncd.sync.plan_changes import Changes, ChangeTracker
from syncd.sync.records import _Staged
from syncd.sync.shrink import GUARD_OFF
from syncd.sync.sqlite_path import _sync_sqlite
from syncd.sync.staging import _create_staging, _stage_snapshot
from syncd.sync.stats import _record_metrics, _refresh_sqlite_statistics
from syncd.sync.versions_hash import stored_hashes

DIRECT_FIRST_IMPORT = True  # tests turn it off to compare with the staged path
# Off: `on_written` gets no changes (bench/bench_sync.py's baseline for recording them).
RECORD_CHANGES = True

# Called inside the sync's transaction, before its commit, when it wrote rows: the sync
# history's run row, changes and event commit (or roll back) with the rows they report.
OnWritten = Callable[[Connection, SyncStats, Changes], None]


def sync_catalog(
    engine: Engine,
    catalog_id: int,
    snapshot: CatalogSnapshot,
    *,
    lock_timeout: float = 30.0,
    baseline: Mapping[str, Any] | None = None,
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
    keep_missing: bool = False,
    max_shrink_fraction: float = GUARD_OFF,
    allow_shrink: bool = False,
    on_written: OnWritten | None = None,
) -> SyncStats:
    """Make catalog `catalog_id` hold exactly `snapshot`, in one transaction under its lock.

    Consumes `snapshot.packages` once. Raises LockBusyError when another sync of the same
    catalog holds the lock for longer than `lock_timeout` seconds, UnknownCatalogError when
    the catalog row does not exist, and TransientError/PermanentError for database
    failures; whatever the snapshot's generator raises propagates unchanged. On any error
    the catalog keeps its previous contents. `baseline`: the catalog fields an operator may
    edit, as the caller read them when its command started (default: as read when the sync
    starts); a field changed since then is an operator's edit and is kept. A text value
    longer than `max_field_chars` is stored cut (syncd/sync/field_limit.py) and named in
    the warnings. `keep_missing`: add and update, delete nothing (a partial mirror). An
    update that would remove more than `max_shrink_fraction` of the catalog's packages
    raises ShrinkRefusedError before writing anything, unless `allow_shrink`
    (syncd/sync/shrink.py); the default is off, every command passes the process's
    SYNCD_MAX_SHRINK_FRACTION (syncd/service/running.py). `on_written(conn, stats, changes)`
    runs inside the transaction once everything is written, when the sync wrote rows: what
    it writes commits with them (the run history, syncd/service/runs.py).
    """
    log = structlog.get_logger().bind(
        catalog_id=catalog_id,
        catalog_name=snapshot.catalog.name,
        catalog_version=snapshot.catalog.version,
    )
    started = time.perf_counter()
    try:
        if engine.dialect.name == "sqlite":
            written = _sync_sqlite(
                engine, catalog_id, snapshot, lock_timeout, baseline, max_field_chars,
                keep_missing, max_shrink_fraction, allow_shrink, on_written,
                on_written is not None and RECORD_CHANGES,
            )  # fmt: skip
        else:
            written = _sync_postgresql(
                engine, catalog_id, snapshot, lock_timeout, baseline, max_field_chars,
                keep_missing, max_shrink_fraction, allow_shrink, on_written,
            )  # fmt: skip
    except SyncdError:
        raise
    except (DBAPIError, psycopg.Error, sqlite3.Error) as exc:
        if _deleted_meanwhile(engine, catalog_id, exc):
            # A DELETE committed while this sync ran (PostgreSQL checks the new rows'
            # foreign keys only at the end of each statement): nothing to retry.
            raise UnknownCatalogError(
                f"The catalog (id {catalog_id}) was deleted meanwhile; the sync stopped "
                "and wrote nothing."
            ) from exc
        raise _database_error(catalog_id, exc) from exc
    stats, staged, unknown_parents, catalog_written, staged_at = written
    if engine.dialect.name == "sqlite" and stats.rows_written:
        _refresh_sqlite_statistics(engine, log)
    duration = time.perf_counter() - started
    cache_events.data_changed()  # committed: in-process caches (the API's) start over
    _record_metrics(f"{snapshot.catalog.name}/{snapshot.catalog.version}", stats, duration)
    stats.duplicates = staged.duplicates
    stats.skipped, stats.sanitised = staged.skipped, staged.sanitised
    stats.cut = staged.cut_values
    stats.warnings = staged.warnings()
    if staged.skipped:
        log.warning("records_skipped", count=staged.skipped, first=staged.skipped_examples)
    if staged.sanitised:
        log.warning("values_sanitised", count=staged.sanitised, first=staged.sanitised_examples)
    if staged.cut_values:
        log.warning("values_cut", count=staged.cut_values, first=staged.cut_examples)
    if staged.duplicates:
        log.warning("duplicate_records", count=staged.duplicates, first=staged.duplicate_examples)
    log.info(
        "sync_finished",
        **stats.as_dict(),
        rows_written=stats.rows_written,
        catalog_row_written=catalog_written,
        unknown_parents=unknown_parents,
        duplicates_ignored=staged.duplicates,
        skipped=staged.skipped,
        # Packages whose versions and targets were not staged: their versions hash was the
        # stored one (syncd/sync/versions_hash.py).
        unchanged_by_hash=staged.unchanged_by_hash,
        duration_s=round(duration, 3),
        # Reading + staging the stream (includes the adapter's parsing) vs the diff.
        stage_s=round(staged_at - started, 3),
    )
    return stats


def _deleted_meanwhile(engine: Engine, catalog_id: int, exc: Exception) -> bool:
    """Whether `exc` is a foreign key the catalog's deletion broke: an integrity error while
    the catalog row is gone. False when that cannot be told (the database is down)."""
    if not isinstance(exc, IntegrityError | psycopg.IntegrityError | sqlite3.IntegrityError):
        return False
    try:
        with engine.connect() as conn:
            found = conn.execute(select(Catalog.id).where(Catalog.id == catalog_id)).first()
    except (DBAPIError, psycopg.Error, sqlite3.Error):
        return False
    return found is None


def _sync_postgresql(
    engine: Engine,
    catalog_id: int,
    snapshot: CatalogSnapshot,
    lock_timeout: float,
    baseline: Mapping[str, Any] | None,
    max_field_chars: int,
    keep_missing: bool,
    max_shrink_fraction: float = GUARD_OFF,
    allow_shrink: bool = False,
    on_written: OnWritten | None = None,
) -> tuple[SyncStats, _Staged, int, bool, float]:
    """(stats, staged, unknown parents, catalog row written, when staging ended)."""
    with catalog_transaction(engine, catalog_id, timeout=lock_timeout) as conn:
        now = datetime.now(UTC)
        current = _read_catalog(conn, catalog_id)
        tracker = change_tracker(conn, catalog_id, now, on_written)
        if DIRECT_FIRST_IMPORT and _is_empty(conn, catalog_id):
            staged, stats, unknown_parents = _direct_import(
                conn, catalog_id, snapshot, now, max_field_chars
            )
            refresh_read_model(conn, catalog_id, None, fresh=True)  # every package is new
            staged_at = time.perf_counter()
            if tracker:
                tracker.finish(first_import=True)
        else:
            _create_staging(conn, "postgresql")
            stored = stored_hashes(conn, catalog_id, keep_missing=keep_missing)
            staged = _stage_snapshot(conn, "postgresql", snapshot, max_field_chars, stored)
            staged_at = time.perf_counter()
            differ = _Differ(
                conn, "postgresql", catalog_id, now, keep_missing=keep_missing,
                max_shrink_fraction=max_shrink_fraction, allow_shrink=allow_shrink,
                changes=tracker,
            )  # fmt: skip
            stats, unknown_parents = differ.apply(staged)
        written = _update_catalog(conn, catalog_id, baseline or current, snapshot, staged, now)
        report_written(conn, stats, tracker, on_written)
    return stats, staged, unknown_parents, written, staged_at


def change_tracker(
    conn: Connection, catalog_id: int, now: datetime, on_written: OnWritten | None
) -> ChangeTracker | None:
    if on_written is None or not RECORD_CHANGES:
        return None
    return ChangeTracker(conn, catalog_id, now, itemize_first_import=False)


def report_written(
    conn: Connection,
    stats: SyncStats,
    tracker: ChangeTracker | None,
    on_written: OnWritten | None,
) -> None:
    """Hand what the sync wrote to `on_written`, inside its transaction."""
    if on_written is not None and stats.rows_written:
        on_written(conn, stats, tracker.changes if tracker else Changes())


def _database_error(catalog_id: int, exc: Exception) -> SyncdError:
    """Classify a database failure for the retry decision (connection trouble is transient,
    data the schema rejects is not)."""
    orig = getattr(exc, "orig", None) or exc
    message = f"catalog {catalog_id}: database error during sync: {orig}".strip()
    transient = isinstance(
        exc, (OperationalError, InterfaceError, psycopg.OperationalError, sqlite3.OperationalError)
    ) or bool(getattr(exc, "connection_invalidated", False))
    return TransientError(message) if transient else PermanentError(message)
