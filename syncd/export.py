"""A catalog as one portable JSON document (`syncd export`; the format is
docs/catalog-export.schema.json, read back by adapters/portable.py for `syncd import-file`).

Streamed: packages are read in batches of EXPORT_BATCH by id (keyset, not OFFSET), each
batch's versions, targets and parent links with three queries, and written out before the
next batch is read, so memory stays flat whatever the catalog's size. All reads run in one
transaction (REPEATABLE READ on PostgreSQL), so a sync committing meanwhile cannot tear the
document.
"""

from __future__ import annotations

import json
import uuid as uuid_module
from collections.abc import Generator, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, select

from syncd.db.tables import Catalog, Package, PackageParent, Target, Version
from syncd.errors import UnknownCatalogError

FORMAT = "syncd-catalog"
FORMAT_VERSION = 1
EXPORT_BATCH = 500  # packages per round of queries


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLite hands back naive datetimes; every stored time is UTC.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid_module.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_plain).encode


def _catalog_fields(row: Any) -> dict[str, Any]:
    return {
        "uuid": str(row.uuid),
        "name": row.name,
        "version": row.version,
        "catalog_type": row.catalog_type,
        "description": row.description,
        "source_url": row.source_url,
        "metadata": row.meta or {},
        "upstream_snapshot_at": row.upstream_snapshot_at,
        "last_successful_update": row.last_successful_update,
        "package_count": row.package_count,
        "version_count": row.version_count,
        "target_count": row.target_count,
    }


def _versions(conn: Connection, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The versions of packages `ids` (newest first, as the catalog sorts them), each with
    its targets, by package id."""
    targets: dict[int, list[dict[str, Any]]] = {}
    t = Target
    rows = conn.execute(
        select(t.version_id, t.uuid, t.target_type, t.target_name, t.target_subtype,
               t.location, t.metadata_.label("meta"), t.gpu_architectures)
        .join(Version, Version.id == t.version_id)
        .where(Version.package_id.in_(ids))
        .order_by(t.version_id, t.id)
    )  # fmt: skip
    for r in rows:
        targets.setdefault(r.version_id, []).append(
            {
                "uuid": str(r.uuid),
                "target_type": r.target_type,
                "target_name": r.target_name,
                "target_subtype": r.target_subtype,
                "location": r.location,
                "metadata": r.meta or {},
                "gpu_architectures": r.gpu_architectures or [],
            }
        )
    v = Version
    found: dict[int, list[dict[str, Any]]] = {}
    rows = conn.execute(
        select(v.id, v.package_id, v.uuid, v.version, v.module_version, v.release_date,
               v.dependencies, v.metadata_.label("meta"))
        .where(v.package_id.in_(ids))
        .order_by(v.package_id, v.sort_index, v.id)
    )  # fmt: skip
    for r in rows:
        found.setdefault(r.package_id, []).append(
            {
                "uuid": str(r.uuid),
                "version": r.version,
                "module_version": r.module_version,
                "release_date": r.release_date,
                "dependencies": r.dependencies or [],
                "metadata": r.meta or {},
                "targets": targets.pop(r.id, []),
            }
        )
    return found


def _parents(conn: Connection, ids: list[int]) -> dict[int, list[str]]:
    parent = Package.__table__.alias("parent")
    rows = conn.execute(
        select(PackageParent.package_id, parent.c.name)
        .join(parent, parent.c.id == PackageParent.parent_id)
        .where(PackageParent.package_id.in_(ids))
        .order_by(PackageParent.package_id, parent.c.name)
    )
    found: dict[int, list[str]] = {}
    for r in rows:
        found.setdefault(r.package_id, []).append(r.name)
    return found


def _package_batches(conn: Connection, catalog_id: int) -> Iterator[Sequence[Any]]:
    p = Package
    after = 0
    while True:
        batch = conn.execute(
            select(p.id, p.uuid, p.name, p.description, p.homepage, p.categories, p.licenses,
                   p.maintainers, p.metadata_.label("package_metadata"), p.is_extension)
            .where(p.catalog_id == catalog_id, p.id > after)
            .order_by(p.id)
            .limit(EXPORT_BATCH)
        ).all()  # fmt: skip
        if not batch:
            return
        yield batch
        after = batch[-1].id


def _packages(conn: Connection, catalog_id: int) -> Iterator[str]:
    """`"name":{...}` members of the packages object, a batch at a time."""
    first = True
    for batch in _package_batches(conn, catalog_id):
        ids = [r.id for r in batch]
        versions, parents = _versions(conn, ids), _parents(conn, ids)
        parts = []
        for r in batch:
            package = {
                "uuid": str(r.uuid),
                "description": r.description,
                "homepage": r.homepage,
                "categories": r.categories or [],
                "licenses": r.licenses or [],
                "maintainers": r.maintainers or [],
                "metadata": r.package_metadata or {},
                "is_extension": r.is_extension,
                "parents": parents.get(r.id, []),
                "versions": versions.get(r.id, []),
            }
            parts.append(f"{_encode(r.name)}:{_encode(package)}")
        yield ("" if first else ",") + ",".join(parts)
        first = False


def export_catalog(engine: Engine, catalog_uuid: str) -> Generator[str, None, None]:
    """The catalog's document as pieces of text to write in order; UnknownCatalogError (before
    the first piece) when there is no such catalog."""
    try:
        parsed = uuid_module.UUID(catalog_uuid.strip())
    except ValueError:
        raise UnknownCatalogError(f"No catalog with uuid {catalog_uuid!r}: not a uuid.") from None
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            conn.exec_driver_sql("BEGIN")  # SQLite: one read snapshot (syncd/api/snapshot.py)
        c = Catalog
        row = conn.execute(
            select(c.id, c.uuid, c.name, c.version, c.catalog_type, c.description, c.source_url,
                   c.metadata_.label("meta"), c.upstream_snapshot_at, c.last_successful_update,
                   c.package_count, c.version_count, c.target_count)
            .where(c.uuid == parsed)
        ).first()  # fmt: skip
        if row is None:
            raise UnknownCatalogError(f"No catalog with uuid {parsed.hex}.")
        head = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "exported_at": datetime.now(UTC),
            "catalog": _catalog_fields(row),
        }
        catalog_id = row.id
        yield _encode(head)[:-1] + ',"packages":{'
        yield from _packages(conn, catalog_id)
        yield "}}\n"
