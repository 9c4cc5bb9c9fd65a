"""Queries of the read-only package, version and target endpoints, with the reference's filters.

Each `*_query` returns one SELECT (entity plus the few columns of its parents the wire format
shows); the `render_*` functions load what a page embeds with one query per page, never one
per row. `dialect` picks the JSON spelling (see filters.py).
"""

from __future__ import annotations

import functools
import uuid as uuid_module
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, bindparam, exists, func, inspect, or_, select
from sqlalchemy.orm import Session, aliased

from syncd.api import representation
from syncd.api.filters import (
    CPU_TARGET_TYPE,
    icontains,
    iexact,
    json_array_contains,
    json_array_nonempty,
    json_text,
    parse_ordering,
)
from syncd.api.schemas import Text
from syncd.db.tables import Catalog, Package, PackageParent, Target, Version
from syncd.domain import CatalogType

PACKAGE_ORDERING = {
    "name": [Package.name],
    "catalog_name": [Catalog.name],
    "catalog_version": [Catalog.version],
    "created": [Package.created],
    "modified": [Package.modified],
}
# "version" sorts by the upstream's own version semantics (sort_index 0 = newest), so
# ascending is oldest first, as a string sort would intend but get wrong ("10" < "9").
VERSION_ORDERING = {
    "version": [-Version.sort_index],
    "package_name": [Package.name],
    "release_date": [Version.release_date],
    "created": [Version.created],
}
TARGET_ORDERING = {
    "cpu_family": [Target.target_name],
    "cpu_microarchitecture": [Target.target_subtype],
    "package_name": [Package.name],
    "target_type": [Target.target_type],
    "target_name": [Target.target_name],
    "created": [Target.created],
}


class PackageFilters(BaseModel):
    query: Text | None = None
    name: Text | None = None
    name_exact: Text | None = None
    description: Text | None = None
    catalog_uuid: uuid_module.UUID | None = None
    catalog_name: Text | None = None
    catalog_version: Text | None = None
    catalog_type: CatalogType | None = None
    is_extension: bool | None = None
    parent_software_uuid: uuid_module.UUID | None = None
    has_version: Text | None = None
    cpu_family: Text | None = None
    cpu_microarchitecture: Text | None = None
    category: Text | None = None
    license: Text | None = None
    toolchain_name: Text | None = None
    has_gpu: bool | None = None
    gpu_arch: Text | None = None


class VersionFilters(BaseModel):
    package_uuid: uuid_module.UUID | None = None
    catalog_uuid: uuid_module.UUID | None = None
    package_name: Text | None = None
    version: Text | None = None
    version_exact: Text | None = None
    catalog_type: CatalogType | None = None
    cpu_family: Text | None = None
    cpu_microarchitecture: Text | None = None
    toolchain_name: Text | None = None
    toolchain_version: Text | None = None
    release_date_after: date | None = None
    release_date_before: date | None = None
    has_gpu: bool | None = None
    gpu_arch: Text | None = None


class TargetFilters(BaseModel):
    version_uuid: uuid_module.UUID | None = None
    package_uuid: uuid_module.UUID | None = None
    catalog_uuid: uuid_module.UUID | None = None
    cpu_family: Text | None = None
    cpu_microarchitecture: Text | None = None
    target_type: Text | None = None
    target_name: Text | None = None
    target_subtype: Text | None = None
    path: Text | None = None
    has_gpu: bool | None = None
    gpu_arch: Text | None = None


# The other side of a parent link. Built once: an alias made per request costs more than the
# query it is used in (SQLAlchemy builds a proxy of every column).
_OTHER_PACKAGE = aliased(Package, name="other_package")


@functools.cache
def _columns(entity: Any) -> tuple[Any, ...]:
    return tuple(getattr(entity, attr.key).label(attr.key) for attr in inspect(entity).column_attrs)


def columns(entity: Any) -> list[Any]:
    """Every mapped column of `entity`, labelled with its attribute name: selected instead of
    the entity, a row reads like the ORM object (`row.uuid`, `row.metadata_`) without the
    cost of building one."""
    return list(_columns(entity))


def _catalog_id(value: uuid_module.UUID) -> Any:
    return select(Catalog.id).where(Catalog.uuid == value).scalar_subquery()


def _target_conditions(
    dialect: str,
    cpu_family: str | None,
    cpu_microarchitecture: str | None,
    gpu_arch: str | None,
) -> list[ColumnElement[bool]]:
    """Conditions on one Target row, for the EXISTS filters of packages and versions."""
    conditions: list[ColumnElement[bool]] = []
    if cpu_family:
        conditions += [Target.target_type == CPU_TARGET_TYPE, Target.target_name == cpu_family]
    if cpu_microarchitecture:
        conditions += [
            Target.target_type == CPU_TARGET_TYPE,
            Target.target_subtype == cpu_microarchitecture,
        ]
    if gpu_arch:
        conditions.append(json_array_contains(Target.gpu_architectures, gpu_arch, dialect))
    return conditions


def _package_has_target(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists(
        select(1)
        .select_from(Target)
        .join(Version, Version.id == Target.version_id)
        .where(Version.package_id == Package.id, *conditions)
    )


def _version_has_target(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists(select(1).where(Target.version_id == Version.id, *conditions))


# --- packages --------------------------------------------------------------------------


# The default order: by name, case-insensitively, then by id (the catalog imported first
# first). Served by the index on lower(name): a page reads its rows, not all packages.
PACKAGE_DEFAULT_ORDER = [func.lower(Package.name).asc()]
# Versions and targets follow their packages' order, then Spack/EESSI version order. On the
# same index: the database walks packages by lower(name) and each package's versions
# (targets) through their unique index, so a page reads a few rows instead of joining and
# sorting all 44k versions (0.5 ms instead of 240 ms for the first page of full Spack).
VERSION_DEFAULT_ORDER = [func.lower(Package.name).asc(), Version.sort_index.asc()]
TARGET_DEFAULT_ORDER = [
    *VERSION_DEFAULT_ORDER,
    Target.target_type.asc(),
    Target.target_name.asc(),
    Target.target_subtype.asc(),
]


def _unfiltered(f: BaseModel) -> bool:
    return all(getattr(f, name) is None for name in type(f).model_fields)


def stored_count_query(f: BaseModel, count_column: str) -> Select | None:
    """The count of an unfiltered list from the catalogs' stored counts (`package_count`,
    `version_count` or `target_count`, kept by the sync in its transaction); None when a
    filter is set (count the query itself)."""
    return _stored_total(count_column) if _unfiltered(f) else None


@functools.cache
def _stored_total(count_column: str) -> Select:
    return select(func.coalesce(func.sum(getattr(Catalog, count_column)), 0))


@functools.cache
def _default_package_query() -> Select:
    """The unfiltered list's statement, built once (see pagination._page_statement)."""
    return _package_query("", PackageFilters(), None)


def package_query(dialect: str, f: PackageFilters, o: Sequence[str] | None = None) -> Select:
    if not o and _unfiltered(f):
        return _default_package_query()
    return _package_query(dialect, f, o)


def _package_query(dialect: str, f: PackageFilters, o: Sequence[str] | None) -> Select:
    query = select(
        *columns(Package),
        Catalog.uuid.label("catalog_uuid"),
        Catalog.name.label("catalog_name"),
        Catalog.version.label("catalog_version"),
        Catalog.catalog_type.label("catalog_type"),
    ).join(Catalog, Catalog.id == Package.catalog_id)
    where: list[ColumnElement[bool]] = []
    if f.query:
        where.append(
            or_(
                icontains(Package.name, f.query),
                icontains(Package.description, f.query),
                exists(
                    select(1).where(
                        Version.package_id == Package.id, icontains(Version.version, f.query)
                    )
                ),
            )
        )
    if f.name:
        where.append(icontains(Package.name, f.name))
    if f.name_exact:
        where.append(iexact(Package.name, f.name_exact))
    if f.description:
        where.append(icontains(Package.description, f.description))
    if f.catalog_uuid is not None:
        where.append(Catalog.uuid == f.catalog_uuid)
    if f.catalog_name:
        where.append(icontains(Catalog.name, f.catalog_name))
    if f.catalog_version:
        where.append(icontains(Catalog.version, f.catalog_version))
    if f.catalog_type is not None:
        where.append(Catalog.catalog_type == f.catalog_type.value)
    if f.is_extension is not None:
        where.append(Package.is_extension.is_(f.is_extension))
    if f.parent_software_uuid is not None:
        parent = _OTHER_PACKAGE
        where.append(
            exists(
                select(1)
                .select_from(PackageParent)
                .join(parent, parent.id == PackageParent.parent_id)
                .where(
                    PackageParent.package_id == Package.id, parent.uuid == f.parent_software_uuid
                )
            )
        )
    if f.has_version:
        where.append(
            exists(
                select(1).where(Version.package_id == Package.id, Version.version == f.has_version)
            )
        )
    # Each target filter is its own EXISTS, as the reference's chained filters are.
    if f.cpu_family:
        where.append(_package_has_target(*_target_conditions(dialect, f.cpu_family, None, None)))
    if f.cpu_microarchitecture:
        where.append(
            _package_has_target(*_target_conditions(dialect, None, f.cpu_microarchitecture, None))
        )
    if f.gpu_arch:
        where.append(_package_has_target(*_target_conditions(dialect, None, None, f.gpu_arch)))
    if f.has_gpu is not None:
        has_gpu = _package_has_target(json_array_nonempty(Target.gpu_architectures, dialect))
        where.append(has_gpu if f.has_gpu else ~has_gpu)
    if f.category:
        where.append(json_array_contains(Package.categories, f.category, dialect))
    if f.license:
        where.append(json_array_contains(Package.licenses, f.license, dialect))
    if f.toolchain_name:
        where.append(
            exists(
                select(1).where(
                    Version.package_id == Package.id,
                    json_text(Version.metadata_, "toolchain", "name") == f.toolchain_name,
                )
            )
        )
    ordering = parse_ordering(o, PACKAGE_ORDERING) or PACKAGE_DEFAULT_ORDER
    return query.where(*where).order_by(*ordering, Package.id)


@dataclass(frozen=True)
class _CatalogRef:
    uuid: uuid_module.UUID
    name: str
    version: str
    catalog_type: str


def _catalog_ref(row: Any) -> _CatalogRef:
    return _CatalogRef(row.catalog_uuid, row.catalog_name, row.catalog_version, row.catalog_type)


def _version_names(session: Session, package_ids: Iterable[int]) -> dict[int, list[str]]:
    """Version strings per package, newest first, for the nested package objects."""
    ids = list(set(package_ids))
    found: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return found
    rows = session.connection().execute(_version_names_statement(), {"ids": ids})
    for package_id, version in rows:
        found[package_id].append(version)
    return found


# The statements of the embedded objects, built once (their ids bound at execution): a
# statement built per request costs more CPU than its execution.
@functools.cache
def _version_names_statement() -> Select:
    return (
        select(Version.package_id, Version.version)
        .where(Version.package_id.in_(bindparam("ids", expanding=True)))
        .order_by(Version.package_id, Version.sort_index, Version.id)
    )


@functools.cache
def _related_statement(parents: bool) -> Select:
    other = _OTHER_PACKAGE
    mine, theirs = (
        (PackageParent.package_id, PackageParent.parent_id)
        if parents
        else (PackageParent.parent_id, PackageParent.package_id)
    )
    return (
        select(mine, other.id, other.uuid, other.name)
        .join(other, other.id == theirs)
        .where(mine.in_(bindparam("ids", expanding=True)))
        .order_by(other.name, other.id)
    )


def _related(
    session: Session, base: str, package_ids: list[int], *, parents: bool
) -> dict[int, list[dict[str, Any]]]:
    """Nested parents (parents=True) or extensions of each package, with their versions."""
    if not package_ids:
        return {}
    rows = session.connection().execute(_related_statement(parents), {"ids": package_ids}).all()
    versions = _version_names(session, (row[1] for row in rows))
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for owner, other_id, other_uuid, other_name in rows:
        found[owner].append(
            representation.nested_package(base, other_uuid, other_name, versions.get(other_id, []))
        )
    return found


def render_packages(session: Session, base: str, rows: list[Any]) -> list[dict[str, Any]]:
    """A list page: parents embedded; versions and extensions only counted (see issue 3)."""
    parents = _related(session, base, [row.id for row in rows], parents=True)
    return [
        representation.package(
            base,
            row,
            _catalog_ref(row),
            parents=parents.get(row.id, []),
            extensions=[],
            versions=[],
        )
        for row in rows
    ]


def _nested_versions(session: Session, package_id: int) -> list[dict[str, Any]]:
    versions = list(
        session.execute(
            select(Version)
            .where(Version.package_id == package_id)
            .order_by(Version.sort_index, Version.id)
        ).scalars()
    )
    targets: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if versions:
        for target in session.execute(
            select(Target)
            .where(Target.version_id.in_([v.id for v in versions]))
            .order_by(Target.target_type, Target.target_name, Target.target_subtype, Target.id)
        ).scalars():
            targets[target.version_id].append(representation.nested_target(target))
    return [representation.nested_version(v, targets.get(v.id, [])) for v in versions]


def render_package_detail(session: Session, base: str, row: Any) -> dict[str, Any]:
    package = row
    return representation.package(
        base,
        package,
        _catalog_ref(row),
        parents=_related(session, base, [package.id], parents=True).get(package.id, []),
        extensions=_related(session, base, [package.id], parents=False).get(package.id, []),
        versions=_nested_versions(session, package.id),
    )


# --- versions --------------------------------------------------------------------------


def version_query(dialect: str, f: VersionFilters, o: Sequence[str] | None = None) -> Select:
    if not o and _unfiltered(f):
        return _default_version_query()
    return _version_query(dialect, f, o)


def _version_query(dialect: str, f: VersionFilters, o: Sequence[str] | None) -> Select:
    query = (
        select(
            *columns(Version),
            Package.uuid.label("package_uuid"),
            Package.name.label("package_name"),
            Catalog.uuid.label("catalog_uuid"),
            Catalog.catalog_type.label("catalog_type"),
        )
        .join(Package, Package.id == Version.package_id)
        .join(Catalog, Catalog.id == Version.catalog_id)
    )
    where: list[ColumnElement[bool]] = []
    if f.package_uuid is not None:
        where.append(Package.uuid == f.package_uuid)
    if f.catalog_uuid is not None:
        where.append(Catalog.uuid == f.catalog_uuid)
    if f.package_name:
        where.append(icontains(Package.name, f.package_name))
    if f.version:
        where.append(icontains(Version.version, f.version))
    if f.version_exact:
        where.append(Version.version == f.version_exact)
    if f.catalog_type is not None:
        where.append(Catalog.catalog_type == f.catalog_type.value)
    if f.cpu_family:
        where.append(_version_has_target(*_target_conditions(dialect, f.cpu_family, None, None)))
    if f.cpu_microarchitecture:
        where.append(
            _version_has_target(*_target_conditions(dialect, None, f.cpu_microarchitecture, None))
        )
    if f.gpu_arch:
        where.append(_version_has_target(*_target_conditions(dialect, None, None, f.gpu_arch)))
    if f.has_gpu is not None:
        has_gpu = _version_has_target(json_array_nonempty(Target.gpu_architectures, dialect))
        where.append(has_gpu if f.has_gpu else ~has_gpu)
    if f.toolchain_name:
        where.append(json_text(Version.metadata_, "toolchain", "name") == f.toolchain_name)
    if f.toolchain_version:
        where.append(json_text(Version.metadata_, "toolchain", "version") == f.toolchain_version)
    if f.release_date_after is not None:
        where.append(Version.release_date >= f.release_date_after)
    if f.release_date_before is not None:
        where.append(Version.release_date <= f.release_date_before)
    ordering = parse_ordering(o, VERSION_ORDERING) or VERSION_DEFAULT_ORDER
    return query.where(*where).order_by(*ordering, Version.id)


@functools.cache
def _default_version_query() -> Select:
    return _version_query("", VersionFilters(), None)


def _target_counts(session: Session, version_ids: list[int]) -> dict[int, int]:
    if not version_ids:
        return {}
    rows = session.connection().execute(
        select(Target.version_id, func.count())
        .where(Target.version_id.in_(version_ids))
        .group_by(Target.version_id)
    )
    return {version_id: int(count) for version_id, count in rows}


def render_versions(session: Session, base: str, rows: list[Any]) -> list[dict[str, Any]]:
    counts = _target_counts(session, [row.id for row in rows])
    return [
        representation.version(
            base,
            row,
            package_uuid=row.package_uuid,
            package_name=row.package_name,
            catalog_uuid=row.catalog_uuid,
            catalog_type=row.catalog_type,
            target_count=counts.get(row.id, 0),
        )
        for row in rows
    ]


# --- targets ---------------------------------------------------------------------------


def target_query(dialect: str, f: TargetFilters, o: Sequence[str] | None = None) -> Select:
    if not o and _unfiltered(f):
        return _default_target_query()
    return _target_query(dialect, f, o)


def _target_query(dialect: str, f: TargetFilters, o: Sequence[str] | None) -> Select:
    query = (
        select(
            *columns(Target),
            Version.uuid.label("version_uuid"),
            Package.uuid.label("package_uuid"),
            Package.name.label("package_name"),
        )
        .join(Version, Version.id == Target.version_id)
        .join(Package, Package.id == Version.package_id)
    )
    where: list[ColumnElement[bool]] = []
    if f.version_uuid is not None:
        where.append(Version.uuid == f.version_uuid)
    if f.package_uuid is not None:
        where.append(Package.uuid == f.package_uuid)
    if f.catalog_uuid is not None:
        where.append(Target.catalog_id == _catalog_id(f.catalog_uuid))
    if f.cpu_family:
        where += [Target.target_type == CPU_TARGET_TYPE, iexact(Target.target_name, f.cpu_family)]
    if f.cpu_microarchitecture:
        where += [
            Target.target_type == CPU_TARGET_TYPE,
            iexact(Target.target_subtype, f.cpu_microarchitecture),
        ]
    if f.target_type:
        where.append(iexact(Target.target_type, f.target_type))
    if f.target_name:
        where.append(icontains(Target.target_name, f.target_name))
    if f.target_subtype:
        where.append(icontains(Target.target_subtype, f.target_subtype))
    if f.path:
        where.append(icontains(Target.location, f.path))
    if f.has_gpu is not None:
        nonempty = json_array_nonempty(Target.gpu_architectures, dialect)
        where.append(nonempty if f.has_gpu else ~nonempty)
    if f.gpu_arch:
        where.append(json_array_contains(Target.gpu_architectures, f.gpu_arch, dialect))
    ordering = parse_ordering(o, TARGET_ORDERING) or TARGET_DEFAULT_ORDER
    return query.where(*where).order_by(*ordering, Target.id)


@functools.cache
def _default_target_query() -> Select:
    return _target_query("", TargetFilters(), None)


def render_targets(base: str, rows: list[Any]) -> list[dict[str, Any]]:
    return [
        representation.target(
            base,
            row,
            version_uuid=row.version_uuid,
            package_uuid=row.package_uuid,
            package_name=row.package_name,
        )
        for row in rows
    ]
