"""SQLite: the snapshot is staged before the write lock is taken, so that other writers (an
operator's PATCH, another catalog's stamps) wait for the set-based diff only, not for the
download's parsing. Staging goes into temporary tables, which live in the connection's own
temp database: writing them takes no lock on the database file.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from syncd.db.locks import sqlite_connection, sqlite_write_lock
from syncd.domain import CatalogSnapshot, SyncStats
from syncd.readmodel.facets import refresh_facets
from syncd.sync.catalog_row import _read_catalog, _update_catalog
from syncd.sync.diff import _Differ
from syncd.sync.records import _Staged
from syncd.sync.shrink import GUARD_OFF
from syncd.sync.staging import _create_staging, _drop_staging, _stage_snapshot


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
) -> tuple[SyncStats, _Staged, int, bool, float]:
    """(stats, staged, unknown parents, catalog row written, when staging ended)."""
    with sqlite_connection(engine) as conn:
        current = _read_catalog(conn, catalog_id)  # an unknown catalog fails before parsing
        try:
            _create_staging(conn, "sqlite")
            # One transaction for the staging rows (not one per row); it writes only the
            # temp database, so it holds no lock other writers wait for.
            conn.exec_driver_sql("BEGIN")
            staged = _stage_snapshot(conn, "sqlite", snapshot, max_field_chars)
            conn.exec_driver_sql("COMMIT")
            staged_at = time.perf_counter()
            with sqlite_write_lock(conn, catalog_id, lock_timeout):
                _read_catalog(conn, catalog_id)  # deleted while the snapshot was staged?
                now = datetime.now(UTC)
                differ = _Differ(
                    conn, "sqlite", catalog_id, now, keep_missing=keep_missing,
                    max_shrink_fraction=max_shrink_fraction, allow_shrink=allow_shrink,
                )  # fmt: skip
                stats, unknown_parents = differ.apply(staged)
                written = _update_catalog(
                    conn, catalog_id, baseline or current, snapshot, staged, now
                )
                if stats.rows_written:  # else the rows, so what they derive, are unchanged
                    refresh_facets(conn, catalog_id, None)
        finally:
            with contextlib.suppress(Exception):  # the pooled connection keeps temp tables
                _drop_staging(conn, "sqlite")
    return stats, staged, unknown_parents, written, staged_at
