"""Dry runs of import and update: what the command would change, with nothing written.

The same steps as a real attempt (syncd/service/running.py), through the same functions
(the adapter's fetch, the staleness refusal, the sync's statements), except the ones that
write: no attempt is marked, no row is made, and the sync runs as a plan that is rolled
back (syncd/sync/planning.py). A failure is raised to the caller and recorded nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from syncd.db.tables import Catalog
from syncd.domain import CatalogSnapshot
from syncd.errors import UnknownCatalogError
from syncd.logging import get_logger
from syncd.service.attempts import _Target, _target_columns, _to_target, parse_uuid
from syncd.service.importing import _close, _fetch_first
from syncd.service.resolving import adapter_for, find_adapter
from syncd.service.running import (
    _max_field_chars,
    _max_shrink_fraction,
    _same_download,
    fetch_snapshot,
)
from syncd.service.staleness import refuse_older

log = get_logger(__name__)


@dataclass(frozen=True)
class DryRunResult:
    """What a command would do. plan None: upstream not modified, nothing would change."""

    command: str  # "import" or "update"
    catalog_uuid: str  # "" when the import would create the catalog
    name: str
    version: str
    catalog_type: str
    keep_missing: bool
    plan: Any  # syncd.sync.planning.SyncPlan | None

    @property
    def creates(self) -> bool:
        return not self.catalog_uuid


def dry_run_update(
    engine: Engine,
    adapters: Mapping[str, Any],
    fetcher: Any,
    *,
    catalog_uuid: str,
    keep_missing: bool = False,
    force: bool = False,
) -> DryRunResult:
    """What update_catalog(catalog_uuid, keep_missing=..., force=...) would change."""
    target = _read_target(engine, Catalog.uuid == _uuid(catalog_uuid))
    if target is None:
        raise UnknownCatalogError(f"No catalog with uuid {catalog_uuid!r}.")
    adapter = adapter_for(adapters, target.name, target.catalog_type)
    snapshot = fetch_snapshot(
        adapter,
        fetcher,
        version=target.version,
        source=target.source_url,
        validators=target.validators,
    )
    return _planned("update", engine, fetcher, target, snapshot, keep_missing, force, None)


def dry_run_import(
    engine: Engine,
    adapters: Mapping[str, Any],
    fetcher: Any,
    *,
    name: str,
    version: str | None = None,
    source: str | None = None,
    force: bool = False,
) -> DryRunResult:
    """What import_catalog(name, version, source, force=...) would change: against the
    stored catalog when it exists, else against nothing."""
    adapter = find_adapter(adapters, name)
    version, fetched = _fetch_first(engine, adapter, fetcher, version, source)
    key = {"name": adapter.name, "version": version, "catalog_type": str(adapter.catalog_type)}
    target = _read_target(
        engine,
        (Catalog.name == key["name"])
        & (Catalog.version == key["version"])
        & (Catalog.catalog_type == key["catalog_type"]),
    )
    if target is None:
        assert fetched is not None  # _fetch_first fetched: no row held the version
        new_row = {**key, "source_url": source or ""}
        return _planned("import", engine, fetcher, None, fetched, False, force, new_row)
    snapshot: CatalogSnapshot | None
    if fetched is None:
        snapshot = fetch_snapshot(
            adapter,
            fetcher,
            version=target.version,
            source=source or target.source_url,
            validators=target.validators,
        )
    else:
        snapshot = None if _same_download(fetched, target) else fetched
        if snapshot is None:
            _close(fetched)
    return _planned("import", engine, fetcher, target, snapshot, False, force, None)


def _planned(
    command: str,
    engine: Engine,
    fetcher: Any,
    target: _Target | None,
    snapshot: CatalogSnapshot | None,
    keep_missing: bool,
    force: bool,
    new_row: Mapping[str, Any] | None,
) -> DryRunResult:
    from syncd.sync.planning import plan_sync  # the sync engine is heavy; see running._sync

    plan = None
    if snapshot is not None:
        try:
            if target is not None:
                refuse_older(snapshot.catalog.snapshot_time, target.snapshot_time, force=force)
            plan = plan_sync(
                engine,
                target.id if target is not None else None,
                snapshot,
                new_row=new_row,
                keep_missing=keep_missing,
                baseline=target.operator_fields if target is not None else None,
                max_field_chars=_max_field_chars(fetcher),
                max_shrink_fraction=_max_shrink_fraction(fetcher),
            )
        finally:
            _close(snapshot)
    name = target.name if target is not None else str((new_row or {}).get("name", ""))
    version = target.version if target is not None else str((new_row or {}).get("version", ""))
    catalog_type = (
        target.catalog_type if target is not None else str((new_row or {}).get("catalog_type"))
    )
    log.info("dry_run_finished", command=command, changed=plan is not None)
    return DryRunResult(
        command=command,
        catalog_uuid=target.uuid if target is not None else "",
        name=name,
        version=version,
        catalog_type=catalog_type,
        keep_missing=keep_missing,
        plan=plan,
    )


def _uuid(value: str) -> Any:
    parsed = parse_uuid(value)
    if parsed is None:
        raise UnknownCatalogError(f"No catalog with uuid {value!r}: not a uuid.")
    return parsed


def _read_target(engine: Engine, where: Any) -> _Target | None:
    with engine.connect() as conn:
        row = conn.execute(_target_columns().where(where)).first()
    return _to_target(row) if row is not None else None
