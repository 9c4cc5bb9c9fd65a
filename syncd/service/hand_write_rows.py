"""What each hand write does to the rows, inside the transaction `hand_writes.hand_write`
opened under the catalogs' locks: checks against the stored data (the referenced rows exist,
keys stay unique, an upstream row keeps its identity), the write, and the counts the sync
also keeps (the catalog's package/version/target counts, a package's version and extension
counts). Values arrive validated by the API (types, lengths); references as uuids.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update

from syncd.db.tables import Catalog, Package, PackageParent, Target, Version
from syncd.service.hand_write_counts import (
    bump_catalog,
    bump_package,
    linked_packages,
    move_package_rows,
    move_version_rows,
)
from syncd.sync.local_order import renumber_versions


class Kind(StrEnum):
    PACKAGE = "package"
    VERSION = "version"
    TARGET = "target"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class HandWrite:
    """One write. `values`: the fields sent (only those change on an update); the parent
    (`catalog` of a package, `package` of a version, `version` of a target) as a uuid."""

    kind: Kind
    action: Action
    uuid: uuid_module.UUID | None = None
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    uuid: uuid_module.UUID | None
    changed_packages: frozenset[int]


class RowNotFound(Exception):
    """The row the write names does not exist."""


class WriteRefused(Exception):
    """The write is invalid against the stored data: `message` (DRF's wording) for `field`."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(field_name, message)
        self.field = field_name
        self.message = message


class CatalogsMoved(Exception):
    """The rows are not in the catalogs that were locked (a write moved them meanwhile)."""


_PACKAGES = cast(Table, Package.__table__)
_VERSIONS = cast(Table, Version.__table__)
_TARGETS = cast(Table, Target.__table__)
TABLES = {Kind.PACKAGE: _PACKAGES, Kind.VERSION: _VERSIONS, Kind.TARGET: _TARGETS}
PARENT = {Kind.PACKAGE: "catalog", Kind.VERSION: "package", Kind.TARGET: "version"}
_PARENT_TABLE = {
    Kind.PACKAGE: cast(Table, Catalog.__table__),
    Kind.VERSION: _PACKAGES,
    Kind.TARGET: _VERSIONS,
}
# The key of each kind, as the API names it: the parent, then the row's own key columns.
IDENTITY = {
    Kind.PACKAGE: ("catalog", "name"),
    Kind.VERSION: ("package", "version", "module_version"),
    Kind.TARGET: ("version", "target_type", "target_name", "target_subtype"),
}
CONTENT = {
    Kind.PACKAGE: ("description", "homepage", "is_extension"),
    Kind.VERSION: ("release_date", "dependencies", "metadata"),
    Kind.TARGET: ("location", "metadata", "gpu_architectures"),
}
DOES_NOT_EXIST = "Invalid hyperlink - Object does not exist."


def unique_message(kind: Kind) -> str:
    return f"The fields {', '.join(IDENTITY[kind])} must make a unique set."


def upstream_identity_message(kind: Kind, name: str) -> str:
    return (
        f"The {name} of a {kind} synced from upstream identifies it upstream and cannot be "
        f"changed; create a {kind} of your own instead."
    )


def _get(conn: Connection, table: Table, value: uuid_module.UUID) -> Any:
    return conn.execute(select(table).where(table.c.uuid == value)).first()


def _parent(conn: Connection, kind: Kind, values: Mapping[str, Any]) -> Any:
    """The parent row the values name; None when they name none."""
    name = PARENT[kind]
    if name not in values:
        return None
    row = _get(conn, _PARENT_TABLE[kind], values[name])
    if row is None:
        raise WriteRefused(name, DOES_NOT_EXIST)
    return row


def _catalog_of(kind: Kind, parent: Any) -> int:
    return int(parent.id if kind is Kind.PACKAGE else parent.catalog_id)


def involved_catalogs(engine: Engine, write: HandWrite) -> frozenset[int]:
    """The catalogs `write` touches, read before their locks are taken."""
    with engine.connect() as conn:
        found: set[int] = set()
        if write.action is not Action.CREATE:
            assert write.uuid is not None
            row = _get(conn, TABLES[write.kind], write.uuid)
            if row is None:
                raise RowNotFound()
            found.add(int(row.catalog_id))
        parent = _parent(conn, write.kind, write.values)
        if parent is not None:
            found.add(_catalog_of(write.kind, parent))
        return frozenset(found)


def apply_write(conn: Connection, write: HandWrite, locked: frozenset[int]) -> Outcome:
    """Make `write` in `conn`'s transaction, which holds the locks of the `locked` catalogs."""
    parent = _parent(conn, write.kind, write.values)
    if parent is not None and _catalog_of(write.kind, parent) not in locked:
        raise CatalogsMoved()
    if write.action is Action.CREATE:
        return _create(conn, write.kind, write.values, parent)
    assert write.uuid is not None
    row = _get(conn, TABLES[write.kind], write.uuid)
    if row is None:
        raise RowNotFound()
    if row.catalog_id not in locked:
        raise CatalogsMoved()
    if write.action is Action.DELETE:
        return _delete(conn, write.kind, row)
    return _update(conn, write.kind, row, write.values, parent)


# --- keys --------------------------------------------------------------------------------


def _key_columns(kind: Kind, parent_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """The row's key as column values: its parent's id and its own key fields."""
    parent_column = {Kind.PACKAGE: "catalog_id", Kind.VERSION: "package_id"}.get(kind, "version_id")
    return {parent_column: parent_id, **{name: values[name] for name in IDENTITY[kind][1:]}}


def _check_unique(
    conn: Connection, kind: Kind, key: Mapping[str, Any], other_than: int | None = None
) -> None:
    table = TABLES[kind]
    query = select(table.c.id).where(*(table.c[name] == value for name, value in key.items()))
    if other_than is not None:
        query = query.where(table.c.id != other_than)
    if conn.execute(query.limit(1)).first() is not None:
        raise WriteRefused("non_field_errors", unique_message(kind))


# --- create --------------------------------------------------------------------------------

_DEFAULTS: dict[Kind, dict[str, Any]] = {
    Kind.PACKAGE: {"description": "", "homepage": None, "is_extension": False},
    Kind.VERSION: {"module_version": "", "release_date": None, "dependencies": [], "metadata": {}},
    Kind.TARGET: {"target_subtype": "", "location": "", "metadata": {}, "gpu_architectures": []},
}


def _create(conn: Connection, kind: Kind, values: Mapping[str, Any], parent: Any) -> Outcome:
    fields = {**_DEFAULTS[kind], **values}
    key = _key_columns(kind, int(parent.id), fields)
    _check_unique(conn, kind, key)
    row_uuid = uuid_module.uuid4()
    row: dict[str, Any] = {
        **key,
        **{name: fields[name] for name in CONTENT[kind]},
        "uuid": row_uuid,
        "content_hash": "",  # no upstream content: nothing for a sync to compare
        "is_local": True,
    }
    catalog_id = _catalog_of(kind, parent)
    if kind is Kind.PACKAGE:
        row.update(categories=[], licenses=[], maintainers=[])
        inserted = conn.execute(insert(_PACKAGES).values(row)).inserted_primary_key
        assert inserted is not None
        bump_catalog(conn, catalog_id, packages=1)
        return Outcome(row_uuid, frozenset({int(inserted[0])}))
    row["catalog_id"] = catalog_id
    if kind is Kind.VERSION:
        conn.execute(insert(_VERSIONS).values({**row, "sort_index": 0}))
        bump_package(conn, int(parent.id), versions=1)
        bump_catalog(conn, catalog_id, versions=1)
        renumber_versions(conn, {int(parent.id)})
        return Outcome(row_uuid, frozenset({int(parent.id)}))
    conn.execute(insert(_TARGETS).values(row))
    bump_catalog(conn, catalog_id, targets=1)
    return Outcome(row_uuid, frozenset({int(parent.package_id)}))


# --- update --------------------------------------------------------------------------------


def _current_parent(conn: Connection, kind: Kind, row: Any) -> Any:
    table = _PARENT_TABLE[kind]
    parent_id = (
        row.catalog_id
        if kind is Kind.PACKAGE
        else row.package_id
        if kind is Kind.VERSION
        else row.version_id
    )
    return conn.execute(select(table).where(table.c.id == parent_id)).one()


def _update(
    conn: Connection, kind: Kind, row: Any, values: Mapping[str, Any], parent: Any
) -> Outcome:
    old_parent = _current_parent(conn, kind, row)
    new_parent = parent if parent is not None else old_parent
    moved = int(new_parent.id) != int(old_parent.id)
    own_key = IDENTITY[kind][1:]
    renamed = [n for n in own_key if n in values and values[n] != getattr(row, n)]
    if not row.is_local and (moved or renamed):
        raise WriteRefused(
            PARENT[kind] if moved else renamed[0],
            upstream_identity_message(kind, PARENT[kind] if moved else renamed[0]),
        )
    current = {name: getattr(row, name) for name in own_key}
    key = _key_columns(kind, int(new_parent.id), {**current, **values})
    if moved or renamed:
        _check_unique(conn, kind, key, other_than=int(row.id))
    table = TABLES[kind]
    changes = {name: values[name] for name in (*own_key, *CONTENT[kind]) if name in values}
    if moved:
        changes.update(key)
    if changes:  # `modified` follows (the column's onupdate)
        conn.execute(update(table).where(table.c.id == row.id).values(changes))
    new_catalog = _catalog_of(kind, new_parent)
    if kind is Kind.PACKAGE:
        if moved:
            move_package_rows(conn, int(row.id), int(row.catalog_id), new_catalog)
        return Outcome(row.uuid, frozenset({int(row.id), *linked_packages(conn, int(row.id))}))
    if kind is Kind.VERSION:
        if moved:
            move_version_rows(conn, row, int(old_parent.id), int(new_parent.id), new_catalog)
        touched = {int(old_parent.id), int(new_parent.id)}
        renumber_versions(conn, touched)
        return Outcome(row.uuid, frozenset(touched))
    if moved and new_catalog != int(row.catalog_id):
        conn.execute(update(_TARGETS).where(_TARGETS.c.id == row.id).values(catalog_id=new_catalog))
        bump_catalog(conn, int(row.catalog_id), targets=-1)
        bump_catalog(conn, new_catalog, targets=1)
    return Outcome(row.uuid, frozenset({int(old_parent.package_id), int(new_parent.package_id)}))


# --- delete --------------------------------------------------------------------------------


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar_one())


def _delete(conn: Connection, kind: Kind, row: Any) -> Outcome:
    catalog_id = int(row.catalog_id)
    if kind is Kind.PACKAGE:
        versions = _count(
            conn,
            select(func.count()).select_from(_VERSIONS).where(_VERSIONS.c.package_id == row.id),
        )
        targets = _count(
            conn,
            select(func.count())
            .select_from(_TARGETS)
            .join(_VERSIONS, _VERSIONS.c.id == _TARGETS.c.version_id)
            .where(_VERSIONS.c.package_id == row.id),
        )
        links = cast(Table, PackageParent.__table__)
        parents = [
            int(p)
            for (p,) in conn.execute(select(links.c.parent_id).where(links.c.package_id == row.id))
        ]
        related = linked_packages(conn, int(row.id))
        conn.execute(delete(_PACKAGES).where(_PACKAGES.c.id == row.id))
        for parent_id in parents:
            bump_package(conn, parent_id, extensions=-1)
        bump_catalog(conn, catalog_id, packages=-1, versions=-versions, targets=-targets)
        return Outcome(None, frozenset(related - {int(row.id)}))
    if kind is Kind.VERSION:
        targets = _count(
            conn, select(func.count()).select_from(_TARGETS).where(_TARGETS.c.version_id == row.id)
        )
        conn.execute(delete(_VERSIONS).where(_VERSIONS.c.id == row.id))
        bump_package(conn, int(row.package_id), versions=-1)
        renumber_versions(conn, {int(row.package_id)})
        bump_catalog(conn, catalog_id, versions=-1, targets=-targets)
        return Outcome(None, frozenset({int(row.package_id)}))
    package_id = conn.execute(
        select(_VERSIONS.c.package_id).where(_VERSIONS.c.id == row.version_id)
    ).scalar_one()
    conn.execute(delete(_TARGETS).where(_TARGETS.c.id == row.id))
    bump_catalog(conn, catalog_id, targets=-1)
    return Outcome(None, frozenset({int(package_id)}))


__all__ = [
    "Action",
    "CatalogsMoved",
    "HandWrite",
    "Kind",
    "Outcome",
    "RowNotFound",
    "WriteRefused",
    "apply_write",
    "involved_catalogs",
]
