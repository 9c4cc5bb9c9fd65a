"""The run and change lists: their queries (filters, `o`, the default newest-first order an
index serves) and their rows as wire objects.

A run names its catalog by value (sync_run keeps name and version), so the history of a
deleted catalog still reads whole; a change shows its run's catalog name and version.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Select, select

from syncd.api.filters import icontains, parse_ordering
from syncd.api.history_schemas import ChangeFilters, RunFilters
from syncd.api.representation import iso_datetime
from syncd.api.software_queries import columns
from syncd.db.process_tables import SyncChange, SyncRun
from syncd.redaction import redact_urls, redact_value

RUNS = "/api/marketplace-software-catalog-runs/"
CHANGES = "/api/marketplace-software-changes/"

RUN_ORDERING = {
    "started": [SyncRun.started],
    "finished": [SyncRun.finished],
    "catalog_name": [SyncRun.catalog_name],
    "catalog_version": [SyncRun.catalog_version],
    "outcome": [SyncRun.outcome],
    "trigger": [SyncRun.trigger],
    "change_count": [SyncRun.change_count],
}
CHANGE_ORDERING = {
    "created": [SyncChange.created],
    "change": [SyncChange.change],
    "package_name": [SyncChange.package_name],
}


def run_query(filters: RunFilters, o: list[str] | None = None) -> Select:
    if filters == RunFilters() and not o:
        return _default_run_query()
    return _run_query(filters, o)


@functools.cache
def _default_run_query() -> Select:
    """The unfiltered list's statement, built once (see pagination._page_statement)."""
    return _run_query(RunFilters(), None)


def _run_query(filters: RunFilters, o: list[str] | None) -> Select:
    query = select(*columns(SyncRun))
    if filters.catalog_uuid is not None:
        query = query.where(SyncRun.catalog_uuid == filters.catalog_uuid)
    if filters.outcome is not None:
        query = query.where(SyncRun.outcome == filters.outcome.value)
    if filters.trigger is not None:
        query = query.where(SyncRun.trigger == filters.trigger.value)
    if filters.started_after is not None:
        query = query.where(SyncRun.started >= filters.started_after)
    if filters.started_before is not None:
        query = query.where(SyncRun.started <= filters.started_before)
    ordering = parse_ordering(o, RUN_ORDERING)
    if ordering is None:
        return query.order_by(SyncRun.started.desc(), SyncRun.id.desc())
    return query.order_by(*ordering, SyncRun.id)


def change_query(filters: ChangeFilters, o: list[str] | None = None) -> Select:
    if filters == ChangeFilters() and not o:
        return _default_change_query()
    return _change_query(filters, o)


@functools.cache
def _default_change_query() -> Select:
    return _change_query(ChangeFilters(), None)


def _change_query(filters: ChangeFilters, o: list[str] | None) -> Select:
    query = select(
        *columns(SyncChange),
        SyncRun.uuid.label("run_uuid"),
        SyncRun.catalog_name,
        SyncRun.catalog_version,
    ).join(SyncRun, SyncRun.id == SyncChange.run_id)
    if filters.catalog_uuid is not None:
        query = query.where(SyncChange.catalog_uuid == filters.catalog_uuid)
    if filters.run_uuid is not None:
        # The run's id first: the changes are then read through their run_id index.
        run_id = select(SyncRun.id).where(SyncRun.uuid == filters.run_uuid).scalar_subquery()
        query = query.where(SyncChange.run_id == run_id)
    if filters.change is not None:
        query = query.where(SyncChange.change == filters.change.value)
    if filters.package_name:
        query = query.where(icontains(SyncChange.package_name, filters.package_name))
    if filters.since is not None:
        query = query.where(SyncChange.created >= filters.since)
    ordering = parse_ordering(o, CHANGE_ORDERING)
    if ordering is None:
        return query.order_by(SyncChange.created.desc(), SyncChange.id.desc())
    return query.order_by(*ordering, SyncChange.id)


def run_url(base: str, run_uuid: Any) -> str:
    return f"{base}{RUNS}{run_uuid.hex}/"


def changes_url(base: str, run_uuid: Any) -> str:
    return f"{base}{CHANGES}?run_uuid={run_uuid.hex}"


def _hex(value: Any) -> str | None:
    return value.hex if value is not None else None


def run_item(base: str, row: Any) -> dict[str, Any]:
    return {
        "url": run_url(base, row.uuid),
        "uuid": row.uuid.hex,
        "catalog_uuid": _hex(row.catalog_uuid),
        "catalog_name": row.catalog_name,
        "catalog_version": row.catalog_version,
        "trigger": row.trigger,
        "command": row.command,
        "message_id": row.message_id,
        "started": iso_datetime(row.started),
        "finished": iso_datetime(row.finished),
        "outcome": row.outcome,
        # Keyed by the URLs fetched, which may carry credentials: hidden in keys and values.
        "validators": {
            redact_urls(str(key)): redact_value(value)
            for key, value in (row.validators or {}).items()
        },
        "counts": row.counts or {},
        "change_count": row.change_count,
        "error": redact_urls(row.error),
        "changes_url": changes_url(base, row.uuid),
    }


def change_item(row: Any) -> dict[str, Any]:
    return {
        "uuid": row.uuid.hex,
        "run_uuid": row.run_uuid.hex,
        "catalog_uuid": _hex(row.catalog_uuid),
        "catalog_name": row.catalog_name,
        "catalog_version": row.catalog_version,
        "created": iso_datetime(row.created),
        "change": row.change,
        "package_name": row.package_name,
        "version": row.version,
        "module_version": row.module_version,
        "details": row.details or {},
    }
