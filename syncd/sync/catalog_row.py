"""The catalog's own row: written only when a catalog-level field changed, and a rolling
upstream's new label checked first against the catalogs that already hold it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, select, update

from syncd.db.tables import Catalog
from syncd.domain import CatalogSnapshot
from syncd.errors import PermanentError, UnknownCatalogError
from syncd.sync.nul import ESCAPED_NUL, NUL, clean_text, without_nul
from syncd.sync.records import _Staged
from syncd.sync.rows import _digest, _json

_catalog = cast(Table, Catalog.__table__)


def _catalog_hash(description: str, source_url: str, meta: dict[str, Any]) -> str:
    return _digest((description, source_url), _json(meta))


def _read_catalog(conn: Connection, catalog_id: int) -> dict[str, Any]:
    c = _catalog.c
    row = conn.execute(
        select(
            c.name,
            c.version,
            c.catalog_type,
            c.description,
            c.source_url,
            c.metadata,
            c.package_count,
            c.version_count,
            c.target_count,
            c.upstream_validators,
            c.content_hash,
            c.upstream_snapshot_at,
        ).where(c.id == catalog_id)
    ).one_or_none()
    if row is None:
        raise UnknownCatalogError(f"catalog {catalog_id} does not exist (deleted meanwhile?)")
    current = dict(row._mapping)
    stamp = current["upstream_snapshot_at"]
    if stamp is not None and stamp.tzinfo is None:  # SQLite: written in UTC, read back naive
        current["upstream_snapshot_at"] = stamp.replace(tzinfo=UTC)
    return current


def _update_catalog(
    conn: Connection,
    catalog_id: int,
    current: dict[str, Any],
    snapshot: CatalogSnapshot,
    staged: _Staged,
    now: datetime,
) -> bool:
    """Write the catalog-level fields if any of them changed; True if the row was written."""
    info = snapshot.catalog
    description, source_url, metadata = _catalog_fields(snapshot, current, staged)
    wanted = {
        "description": description,
        "source_url": source_url,
        "metadata": metadata,
        "package_count": staged.packages,
        "version_count": staged.versions,
        "target_count": staged.targets,
        "upstream_validators": snapshot.validators,
        "content_hash": _catalog_hash(description, source_url, metadata),
    }
    if info.snapshot_time is not None:  # unknown keeps what was known
        wanted["upstream_snapshot_at"] = info.snapshot_time
    if info.rolling and info.version and info.version != current["version"]:
        # A rolling upstream (Spack keeps only its latest data) moved on: the catalog row
        # follows it rather than keep a label that no longer describes its contents.
        _check_label_free(conn, catalog_id, current, info.version)
        wanted["version"] = info.version
    changed = {key: value for key, value in wanted.items() if current.get(key) != value}
    if not changed:
        return False
    conn.execute(
        update(_catalog).where(_catalog.c.id == catalog_id).values(modified=now, **changed)
    )
    return True


def _catalog_fields(
    snapshot: CatalogSnapshot, current: dict[str, Any], staged: _Staged
) -> tuple[str, str, dict[str, Any]]:
    """The catalog's description, source_url and metadata as stored: NUL replaced, as in
    every other upstream value (syncd/sync/nul.py), and noted."""
    info = snapshot.catalog
    fields = {"description": info.description, "source_url": info.source_url}
    for name, value in fields.items():
        if NUL in value:
            fields[name] = clean_text(value)
            staged.sanitise(name, None)
    metadata = info.metadata
    if ESCAPED_NUL in _json(metadata):
        metadata = without_nul(metadata)
        if _json(metadata) != _json(info.metadata):
            staged.sanitise("metadata", None)
    return fields["description"], fields["source_url"] or current["source_url"], metadata


def _check_label_free(
    conn: Connection, catalog_id: int, current: dict[str, Any], version: str
) -> None:
    c = _catalog.c
    other = conn.execute(
        select(c.uuid).where(
            c.name == current["name"],
            c.version == version,
            c.catalog_type == current["catalog_type"],
            c.id != catalog_id,
        )
    ).scalar_one_or_none()
    if other is not None:
        raise PermanentError(
            f"Upstream now offers {current['name']} {version} instead of {current['version']}, "
            f"and catalog {other.hex} already holds {version}: update that catalog, or "
            f"delete one of the two."
        )
