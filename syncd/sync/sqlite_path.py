"""SQLite: the snapshot is staged before the write lock is taken, so that other writers (an
operator's PATCH, another catalog's stamps) wait for the set-based diff only, not for the
download's parsing. Staging goes into temporary tables, which live in the connection's own
temp database: writing them takes no lock on the database file.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from syncd.db.locks import sqlite_connection, sqlite_write_lock
from syncd.domain import CatalogSnapshot, SyncStats
from syncd.sync.catalog_row import _read_catalog, _update_catalog
from syncd.sync.diff import _Differ
from syncd.sync.plan_changes import Changes, ChangeTracker
from syncd.sync.records import _Staged
from syncd.sync.shrink import GUARD_OFF
from syncd.sync.staging import _create_staging, _drop_staging, _stage_snapshot
from syncd.sync.versions_hash import stored_hashes


def _sync_sqlite(
    engine: Engine,
    catalog_id: int,
    snapshot: CatalogSnapshot,
    lock_timeout: float,
    baseline: Mapping[str, Any] | None,
    max_field_chars: int,
    keep_missing: bool = False,
    max_shrink_fraction: float = GUARD_OFF,
    allow_shrink: bool = False,
    on_written: Callable[[Connection, SyncStats, Changes], None] | None = None,
    tracking: bool = False,
) -> tuple[SyncStats, _Staged, int, bool, float]:
    """(stats, staged, unknown parents, catalog row written, when staging ended)."""
    with sqlite_connection(engine) as conn:
        current = _read_catalog(conn, catalog_id)  # an unknown catalog fails before parsing
        try:
            _create_staging(conn, "sqlite")
            # One transaction for the staging rows (not one per row); it writes only the
            # temp database, so it holds no lock other writers wait for.
            conn.exec_driver_sql("BEGIN")
            # Read outside the write lock: the diff checks them again (check_skipped).
            stored = stored_hashes(conn, catalog_id, keep_missing=keep_missing)
            staged = _stage_snapshot(conn, "sqlite", snapshot, max_field_chars, stored)
            conn.exec_driver_sql("COMMIT")
            staged_at = time.perf_counter()
            with sqlite_write_lock(conn, catalog_id, lock_timeout):
                _read_catalog(conn, catalog_id)  # deleted while the snapshot was staged?
                now = datetime.now(UTC)
                tracker = (
                    ChangeTracker(conn, catalog_id, now, itemize_first_import=False)
                    if tracking
                    else None
                )
                differ = _Differ(
                    conn, "sqlite", catalog_id, now, keep_missing=keep_missing,
                    max_shrink_fraction=max_shrink_fraction, allow_shrink=allow_shrink,
                    changes=tracker,
                )  # fmt: skip
                stats, unknown_parents = differ.apply(staged)
                written = _update_catalog(
                    conn, catalog_id, baseline or current, snapshot, staged, now
                )
                if on_written is not None and stats.rows_written:
                    on_written(conn, stats, tracker.changes if tracker else Changes())
        finally:
            with contextlib.suppress(Exception):  # the pooled connection keeps temp tables
                _drop_staging(conn, "sqlite")
    return stats, staged, unknown_parents, written, staged_at
