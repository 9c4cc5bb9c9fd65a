"""A dry run of the sync: the real sync, rolled back.

plan_sync runs the very statements sync_catalog runs (staging, the diff of diff.py, the
catalog row of catalog_row.py), in one transaction under the catalog's lock, reads what
they changed inside that transaction (plan_changes.py, as a sync records its changes), and
then rolls the transaction back. So a plan cannot drift from what a sync would do, and it
writes nothing: no row, no timestamp (the service marks no attempt either). Cost: the
same as a sync, minus the commit. PostgreSQL hands out the ids the rolled-back inserts took
(sequences are not transactional): the next real sync's ids skip them, which nothing relies on.

A catalog that does not exist yet (`syncd import --dry-run` of a new one) is planned
against a row inserted in the same transaction, which the rollback removes again: the diff
against nothing.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert

from syncd.config import DEFAULT_MAX_FIELD_CHARS, DEFAULT_MAX_SHRINK_FRACTION
from syncd.db.locks import catalog_transaction
from syncd.db.tables import Catalog
from syncd.domain import CatalogSnapshot, SyncStats
from syncd.sync.catalog_row import _read_catalog, _update_catalog
from syncd.sync.diff import _Differ
from syncd.sync.plan_changes import Changes, ChangeTracker
from syncd.sync.shrink import ShrinkVerdict
from syncd.sync.staging import _create_staging, _drop_staging, _stage_snapshot
from syncd.sync.versions_hash import stored_hashes


@dataclass
class SyncPlan:
    """What a sync of the snapshot would do, and the catalog-level fields it would change."""

    stats: SyncStats
    changes: Changes
    shrink: ShrinkVerdict
    catalog_fields: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Discard(Exception):
    """Raised inside the transaction to roll it back, carrying the plan out."""

    def __init__(self, plan: SyncPlan) -> None:
        super().__init__("dry run: rolled back")
        self.plan = plan


def plan_sync(
    engine: Engine,
    catalog_id: int | None,
    snapshot: CatalogSnapshot,
    *,
    new_row: Mapping[str, Any] | None = None,
    keep_missing: bool = False,
    baseline: Mapping[str, Any] | None = None,
    lock_timeout: float = 30.0,
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
    max_shrink_fraction: float = DEFAULT_MAX_SHRINK_FRACTION,
) -> SyncPlan:
    """The plan of sync_catalog(engine, catalog_id, snapshot, ...), with nothing written.
    catalog_id None: a catalog not made yet, planned as `new_row` (name, version,
    catalog_type, source_url) with no rows. Consumes `snapshot.packages` once."""
    dialect = engine.dialect.name
    try:
        with catalog_transaction(engine, catalog_id or 0, timeout=lock_timeout) as conn:
            if catalog_id is None:
                catalog_id = _insert_row(conn, new_row or {})
            current = _read_catalog(conn, catalog_id)
            _create_staging(conn, dialect)
            stored = stored_hashes(conn, catalog_id, keep_missing=keep_missing)
            staged = _stage_snapshot(conn, dialect, snapshot, max_field_chars, stored)
            now = datetime.now(UTC)
            tracker = ChangeTracker(conn, catalog_id, now, itemize_first_import=True)
            # The guard's verdict is the sync's (the same function, the same setting),
            # reported instead of enforced.
            differ = _Differ(
                conn, dialect, catalog_id, now, keep_missing=keep_missing,
                max_shrink_fraction=max_shrink_fraction, allow_shrink=True, changes=tracker,
            )  # fmt: skip
            stats, _unknown = differ.apply(staged)
            _update_catalog(conn, catalog_id, baseline or current, snapshot, staged, now)
            changes = tracker.changes
            stats.warnings = staged.warnings()
            after = _read_catalog(conn, catalog_id)
            fields = [key for key in _CATALOG_FIELDS if after[key] != current[key]]
            _drop_staging(conn, dialect)
            raise _Discard(SyncPlan(stats, changes, differ.shrink, fields, stats.warnings))
    except _Discard as discarded:
        return discarded.plan


_CATALOG_FIELDS = (
    "version",
    "description",
    "source_url",
    "metadata",
    "package_count",
    "version_count",
    "target_count",
    "upstream_snapshot_at",
)


def _insert_row(conn: Connection, values: Mapping[str, Any]) -> int:
    row = {
        "uuid": uuid_module.uuid4(),
        "name": values.get("name", ""),
        "version": values.get("version", ""),
        "catalog_type": values.get("catalog_type", "binary_runtime"),
        "source_url": values.get("source_url") or "",
        "update_errors": "",
    }
    return int(conn.execute(insert(Catalog).values(**row).returning(Catalog.id)).scalar_one())
