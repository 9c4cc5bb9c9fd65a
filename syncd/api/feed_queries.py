"""What the Atom feeds read: the newest runs that changed something, each with its changes
summarised per kind (how many, and the first few names), in two statements per feed.

A run of a large refresh has thousands of changes; an entry names at most NAMES_PER_KIND of
each kind and counts the rest, so a feed costs the same whatever the runs wrote.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from syncd.db.process_tables import SyncChange, SyncRun
from syncd.db.tables import Catalog

NAMES_PER_KIND = 25


@dataclass(frozen=True)
class NamedChange:
    package_name: str
    version: str
    module_version: str
    details: dict[str, Any]


@dataclass
class RunSummary:
    """One feed entry's data: the run, and per change kind its count and first changes."""

    uuid: uuid_module.UUID
    catalog_name: str
    catalog_version: str
    trigger: str
    command: str
    started: datetime
    finished: datetime
    change_count: int
    counts: dict[str, int] = field(default_factory=dict)
    changes: dict[str, list[NamedChange]] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedCatalog:
    uuid: uuid_module.UUID
    name: str
    version: str


def feed_catalog(connection: Connection, catalog_uuid: uuid_module.UUID) -> FeedCatalog | None:
    """The catalog a feed is about: its row, else (deleted since) its newest run's names; None
    when syncd knows neither."""
    row = connection.execute(
        select(Catalog.name, Catalog.version).where(Catalog.uuid == catalog_uuid)
    ).first()
    if row is None:
        row = connection.execute(
            select(SyncRun.catalog_name, SyncRun.catalog_version)
            .where(SyncRun.catalog_uuid == catalog_uuid)
            .order_by(SyncRun.started.desc(), SyncRun.id.desc())
            .limit(1)
        ).first()
    return None if row is None else FeedCatalog(catalog_uuid, row[0], row[1])


def recent_runs(
    connection: Connection, catalog_uuid: uuid_module.UUID | None, limit: int
) -> list[RunSummary]:
    """The newest `limit` runs that changed something (of one catalog, or of all), newest
    first, with their changes summarised."""
    query = select(
        SyncRun.id,
        SyncRun.uuid,
        SyncRun.catalog_name,
        SyncRun.catalog_version,
        SyncRun.trigger,
        SyncRun.command,
        SyncRun.started,
        SyncRun.finished,
        SyncRun.change_count,
    ).where(SyncRun.change_count > 0, SyncRun.finished.is_not(None))
    if catalog_uuid is not None:
        query = query.where(SyncRun.catalog_uuid == catalog_uuid)
    # By start, as the runs list: the (catalog_uuid, started) and started indexes serve it.
    query = query.order_by(SyncRun.started.desc(), SyncRun.id.desc()).limit(limit)
    runs = {
        row.id: RunSummary(
            uuid=row.uuid,
            catalog_name=row.catalog_name,
            catalog_version=row.catalog_version,
            trigger=row.trigger,
            command=row.command,
            started=row.started,
            finished=row.finished,
            change_count=row.change_count,
        )
        for row in connection.execute(query)
    }
    _add_changes(connection, runs)
    return list(runs.values())


def _add_changes(connection: Connection, runs: dict[int, RunSummary]) -> None:
    """Each run's count per kind and its first NAMES_PER_KIND changes of each kind (in the
    order written), read together for the whole page."""
    if not runs:
        return
    partition = (SyncChange.run_id, SyncChange.change)
    numbered = (
        select(
            SyncChange.run_id,
            SyncChange.change,
            SyncChange.package_name,
            SyncChange.version,
            SyncChange.module_version,
            SyncChange.details,
            func.row_number().over(partition_by=partition, order_by=SyncChange.id).label("n"),
            func.count().over(partition_by=partition).label("total"),
        )
        .where(SyncChange.run_id.in_(list(runs)))
        .subquery()
    )
    rows: Sequence[Any] = connection.execute(
        select(numbered)
        .where(numbered.c.n <= NAMES_PER_KIND)
        .order_by(numbered.c.run_id, numbered.c.change, numbered.c.n)
    ).all()
    for row in rows:
        summary = runs[row.run_id]
        summary.counts[row.change] = int(row.total)
        summary.changes.setdefault(row.change, []).append(
            NamedChange(row.package_name, row.version, row.module_version, row.details or {})
        )
