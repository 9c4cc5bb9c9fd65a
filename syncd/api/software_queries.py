"""Queries of the read-only package, version and target endpoints, with the reference's filters.

Each `*_query` returns one SELECT (entity plus the few columns of its parents the wire format
shows), ordered so that an index serves a page; the unfiltered ones are built once, since
building a statement costs more than running it. `dialect` picks the JSON spelling (see
filters.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Integer, Select, exists, func, inspect, literal_column, select

from syncd.api.facet_count import facet_match
from syncd.api.filters import (
    CPU_TARGET_TYPE,
    icontains,
    iexact,
    json_array_contains,
    json_array_nonempty,
    json_list_at_contains,
    json_list_at_has_object,
    json_text,
    parse_ordering,
)
from syncd.api.offering_queries import linked_catalog_ids
from syncd.api.query_search import query_condition
from syncd.api.software_filters import (
    _OTHER_PACKAGE,
    PACKAGE_ORDERING,
    TARGET_ORDERING,
    VERSION_ORDERING,
    PackageFilters,
    TargetFilters,
    VersionFilters,
    _catalog_id,
    _package_has_target,
    _target_conditions,
    _version_has_target,
    any_of,
)
from syncd.db.tables import (
    Catalog,
    Package,
    PackageFacet,
    PackageParent,
    Target,
    Version,
)
from syncd.readmodel import facets


@functools.cache
def _columns(entity: Any) -> tuple[Any, ...]:
    return tuple(getattr(entity, attr.key).label(attr.key) for attr in inspect(entity).column_attrs)


def columns(entity: Any) -> list[Any]:
    """Every mapped column of `entity`, labelled with its attribute name: selected instead of
    the entity, a row reads like the ORM object (`row.uuid`, `row.metadata_`) without the
    cost of building one."""
    return list(_columns(entity))


# The default order: by name, case-insensitively, then by id (the catalog imported first
# first), as Waldur's ["name", "id"]. Served by the index on lower(name): a page reads its
# rows, not all packages.
PACKAGE_DEFAULT_ORDER = [func.lower(Package.name).asc()]
# Waldur's ["package", "version", "module_version", "id"]: versions follow their packages'
# order, then the version, oldest first, by the upstream's version semantics (as `o=version`;
# Waldur compares strings), then the module version. The database walks packages by
# lower(name) and each package's versions through their unique index, so a page reads a few
# rows instead of joining and sorting all 44k versions (0.5 ms instead of 240 ms for the
# first page of full Spack).
VERSION_DEFAULT_ORDER = [
    func.lower(Package.name).asc(),
    Package.id.asc(),
    Version.sort_index.desc(),
    Version.module_version.asc(),
]
# Waldur's ["-created", "id"]: newest first.
TARGET_DEFAULT_ORDER = [Target.created.desc()]


def _unfiltered(f: BaseModel) -> bool:
    return all(getattr(f, name) is None for name in type(f).model_fields)


def stored_count_query(f: BaseModel, count_column: str) -> Select | None:
    """The count of an unfiltered list from the catalogs' stored counts (`package_count`,
    `version_count` or `target_count`, kept by the sync in its transaction); None when a
    filter is set (count the query itself)."""
    return _stored_total(count_column) if _unfiltered(f) else None


@functools.cache
def _stored_total(count_column: str) -> Select:
    # A literal 0, not a bound one: the page statements that embed this count keep no
    # parameter and PostgreSQL plans them once (pagination.page_bound).
    zero = literal_column("0", Integer)
    return select(func.coalesce(func.sum(getattr(Catalog, count_column)), zero))


@functools.cache
def _default_package_query() -> Select:
    """The unfiltered list's statement, built once (see pagination._page_statement)."""
    return _package_query("", PackageFilters(), None)


def package_query(dialect: str, f: PackageFilters, o: Sequence[str] | None = None) -> Select:
    if not o and _unfiltered(f):
        return _default_package_query()
    return _package_query(dialect, f, o)


@functools.cache
def package_select() -> Select:
    """The package list's columns and join, without conditions."""
    return select(
        *columns(Package),
        Catalog.uuid.label("catalog_uuid"),
        Catalog.name.label("catalog_name"),
        Catalog.version.label("catalog_version"),
        Catalog.catalog_type.label("catalog_type"),
    ).join(Catalog, Catalog.id == Package.catalog_id)


def _package_query(dialect: str, f: PackageFilters, o: Sequence[str] | None) -> Select:
    ordering = parse_ordering(o, PACKAGE_ORDERING) or PACKAGE_DEFAULT_ORDER
    return package_select().where(*package_conditions(dialect, f)).order_by(*ordering, Package.id)


def package_conditions(dialect: str, f: PackageFilters) -> list[ColumnElement[bool]]:
    """The WHERE conditions of the package list's filters `f`."""
    where: list[ColumnElement[bool]] = []
    if f.query:
        where.append(query_condition(dialect, f.query))
    if f.name:
        where.append(icontains(Package.name, f.name))
    if f.name_exact:
        where.append(iexact(Package.name, f.name_exact))
    if f.description:
        where.append(icontains(Package.description, f.description))
    if f.catalog_uuid is not None:
        where.append(Catalog.uuid == f.catalog_uuid)
    if f.offering_uuid is not None:
        where.append(Package.catalog_id.in_(linked_catalog_ids(f.offering_uuid)))
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
    # Each target filter is its own condition, as the reference's chained filters are; the
    # CPU and GPU ones read the facets the writer stored (syncd/readmodel/facets.py).
    if f.cpu_family:
        where.append(
            _facet(facets.CPU_FAMILY, f.cpu_family)
            if _stored(f.cpu_family)
            else _package_has_target(*_target_conditions(dialect, f.cpu_family, None, None))
        )
    if f.cpu_microarchitecture:
        micro = f.cpu_microarchitecture
        where.append(
            _facet(facets.CPU_MICROARCHITECTURE, micro)
            if _stored(micro)
            else _package_has_target(*_target_conditions(dialect, None, micro, None))
        )
    if f.gpu_arch:
        where.append(
            _facet(facets.GPU_ARCH, [f.gpu_arch])
            if facets.stored(f.gpu_arch)
            else _package_has_target(*_target_conditions(dialect, None, None, f.gpu_arch))
        )
    if f.has_gpu is not None:
        has_gpu = _facet(facets.GPU, [""])
        where.append(has_gpu if f.has_gpu else ~has_gpu)
    if f.category:
        where.append(json_array_contains(Package.categories, f.category, dialect))
    if f.license:
        where.append(json_array_contains(Package.licenses, f.license, dialect))
    if f.toolchain_name and facets.stored(f.toolchain_name):
        where.append(_facet(facets.TOOLCHAIN, [f.toolchain_name]))
    # Each condition on versions is its own EXISTS, as each of Waldur's filter() calls is.
    for condition in _version_conditions(dialect, f):
        where.append(exists(select(1).where(Version.package_id == Package.id, condition)))
    return where


def _stored(values: Sequence[str]) -> bool:
    """Whether every value can be among the stored facets (else the caller scans)."""
    return all(facets.stored(value) for value in values)


def _facet(kind: str, values: Sequence[str]) -> ColumnElement[bool]:
    """The package has one of `values` among its stored facets of `kind` (written into the
    statement: see facet_count.facet_match)."""
    return exists(
        select(1).where(
            *facet_match(PackageFacet, kind, values), PackageFacet.package_id == Package.id
        )
    )


def _version_conditions(dialect: str, f: PackageFilters) -> list[ColumnElement[bool]]:
    """The package filters that look into a version's metadata, one condition each."""
    conditions: list[ColumnElement[bool]] = []
    if f.toolchain_name and not facets.stored(f.toolchain_name):
        conditions.append(json_text(Version.metadata_, "toolchain", "name") == f.toolchain_name)
    if f.toolchain_families_compatibility:
        conditions.append(_toolchain_family(dialect, f.toolchain_families_compatibility))
    for field, value in (("type", f.extension_type), ("name", f.extension_name)):
        if value:
            conditions.append(
                json_list_at_has_object(Version.metadata_, "extensions", field, value, dialect)
            )
    return conditions


def _toolchain_family(dialect: str, value: str) -> ColumnElement[bool]:
    return json_list_at_contains(
        Version.metadata_, "toolchain_families_compatibility", value, dialect
    )


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
            Package.metadata_.label("package_metadata"),
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
    if f.offering_uuid is not None:
        where.append(Version.catalog_id.in_(linked_catalog_ids(f.offering_uuid)))
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
    if f.toolchain_families_compatibility:
        where.append(_toolchain_family(dialect, f.toolchain_families_compatibility))
    if f.release_date_after is not None:
        where.append(Version.release_date >= f.release_date_after)
    if f.release_date_before is not None:
        where.append(Version.release_date <= f.release_date_before)
    ordering = parse_ordering(o, VERSION_ORDERING) or VERSION_DEFAULT_ORDER
    return query.where(*where).order_by(*ordering, Version.id)


@functools.cache
def _default_version_query() -> Select:
    return _version_query("", VersionFilters(), None)


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
            # What fragments.target_wire_metadata composes a Spack default target's from.
            Version.version,
            Version.metadata_.label("version_metadata"),
            Version.dependencies.label("version_dependencies"),
            Version.is_local.label("version_is_local"),
            Package.categories.label("package_categories"),
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
    if f.offering_uuid is not None:
        where.append(Target.catalog_id.in_(linked_catalog_ids(f.offering_uuid)))
    # Case-insensitive here, as Waldur's target filters are (iexact).
    if f.cpu_family:
        where += [
            Target.target_type == CPU_TARGET_TYPE,
            any_of(Target.target_name, f.cpu_family, ignore_case=True),
        ]
    if f.cpu_microarchitecture:
        where += [
            Target.target_type == CPU_TARGET_TYPE,
            any_of(Target.target_subtype, f.cpu_microarchitecture, ignore_case=True),
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
