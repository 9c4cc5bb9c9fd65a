"""The catalog's own row: written only when a catalog-level field changed, and a rolling
upstream's new label checked first against the catalogs that already hold it.

An operator may edit the same row (PATCH/PUT) while a sync runs: a field the operator changed
since the sync read the row is kept, never overwritten with what the sync read before.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, select, update

from syncd.db.tables import Catalog
from syncd.domain import CatalogSnapshot
from syncd.errors import PermanentError, UnknownCatalogError
from syncd.logging import get_logger
from syncd.sync.field_limit import cut_strings, cut_text
from syncd.sync.nul import ESCAPED_NUL, NUL, clean_text, without_nul
from syncd.sync.records import _Staged
from syncd.sync.rows import _digest, _json

_catalog = cast(Table, Catalog.__table__)
log = get_logger(__name__)

# The fields the API lets an operator set that the sync also writes. The sync's other
# columns (counts, validators, content_hash) are its own: only a sync writes them, and syncs
# of one catalog never overlap (the catalog lock).
OPERATOR_FIELDS = ("description", "source_url", "metadata", "version")


def _catalog_hash(description: str, source_url: str, meta: dict[str, Any]) -> str:
    return _digest((description, source_url), _json(meta))


def _read_catalog(conn: Connection, catalog_id: int, *, lock: bool = False) -> dict[str, Any]:
    """The row's sync-relevant fields; `lock`: FOR UPDATE (PostgreSQL; SQLite's write lock
    is held anyway), so no PATCH commits between this read and the sync's commit."""
    c = _catalog.c
    query = select(
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
    row = conn.execute(query.with_for_update() if lock else query).one_or_none()
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
    baseline: Mapping[str, Any],
    snapshot: CatalogSnapshot,
    staged: _Staged,
    now: datetime,
) -> bool:
    """Write the catalog-level fields if any of them changed; True if the row was written.

    `baseline` holds the OPERATOR_FIELDS as read when the command started: a field that
    differs from it now was set by an operator meanwhile, and is kept.
    """
    info = snapshot.catalog
    latest = _read_catalog(conn, catalog_id, lock=True)
    edited = [f for f in OPERATOR_FIELDS if f in baseline and latest[f] != baseline[f]]
    if edited:
        log.info("operator_edit_kept", catalog_id=catalog_id, fields=edited)
    description, source_url, metadata = _catalog_fields(snapshot, latest, staged)
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
    moved = info.rolling and info.version and info.version != latest["version"]
    if moved and "version" not in edited:
        # A rolling upstream (Spack keeps only its latest data) moved on: the catalog row
        # follows it rather than keep a label that no longer describes its contents.
        _check_label_free(conn, catalog_id, latest, info.version)
        wanted["version"] = info.version
    for field in edited:
        wanted.pop(field, None)
    changed = {key: value for key, value in wanted.items() if latest.get(key) != value}
    if not changed:
        return False
    conn.execute(
        update(_catalog).where(_catalog.c.id == catalog_id).values(modified=now, **changed)
    )
    return True


def _catalog_fields(
    snapshot: CatalogSnapshot, current: dict[str, Any], staged: _Staged
) -> tuple[str, str, dict[str, Any]]:
    """The catalog's description, source_url and metadata as stored: cut to the field limit
    (syncd/sync/field_limit.py) and NUL replaced (syncd/sync/nul.py), as every other
    upstream value, and noted."""
    info = snapshot.catalog
    limit = staged.max_field_chars
    description, cut = cut_text(info.description, limit)
    if cut:
        staged.cut("description", None)
    fields = {"description": description, "source_url": info.source_url}
    for name, value in fields.items():
        if NUL in value:
            fields[name] = clean_text(value)
            staged.sanitise(name, None)
    metadata = info.metadata
    if len(_json(metadata)) > limit:
        metadata, cut = cut_strings(metadata, limit)
        if cut:
            staged.cut("metadata", None)
    if ESCAPED_NUL in _json(metadata):
        clean = without_nul(metadata)
        if _json(clean) != _json(metadata):
            staged.sanitise("metadata", None)
            metadata = clean
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
