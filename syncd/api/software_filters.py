"""The reference's filters and ordering keys of the package, version and target lists.

Kept apart from the SELECTs because they are the endpoints' vocabulary: the routes publish the
ordering keys in their help, and the EXISTS conditions on targets serve two lists alike.
`dialect` picks the JSON spelling (see filters.py); filter_params.py says how values parse.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import aliased

from syncd.api.filter_params import (
    FilterBool,
    FilterCatalogType,
    FilterDate,
    FilterUUID,
    FilterValues,
)
from syncd.api.filters import CPU_TARGET_TYPE, json_array_contains
from syncd.api.schemas import FilterText
from syncd.db.tables import Catalog, Package, Target, Version

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
# Waldur declares ("target_name", "cpu_family") and ("target_name", "target_name"); the
# second replaces the first in django-filter's field map, so `o=cpu_family` is not a choice.
TARGET_ORDERING = {
    "cpu_microarchitecture": [Target.target_subtype],
    "package_name": [Package.name],
    "target_type": [Target.target_type],
    "target_name": [Target.target_name],
    "created": [Target.created],
}


class PackageFilters(BaseModel):
    query: FilterText | None = None
    name: FilterText | None = None
    name_exact: FilterText | None = None
    description: FilterText | None = None
    catalog_uuid: FilterUUID = None
    offering_uuid: FilterUUID = None  # catalogs linked to it
    catalog_name: FilterText | None = None
    catalog_version: FilterText | None = None
    catalog_type: FilterCatalogType = None
    is_extension: FilterBool = None
    parent_software_uuid: FilterUUID = None
    has_version: FilterText | None = None
    cpu_family: FilterValues = None
    cpu_microarchitecture: FilterValues = None
    extension_type: FilterText | None = None
    extension_name: FilterText | None = None
    category: FilterText | None = None
    license: FilterText | None = None
    toolchain_name: FilterText | None = None
    toolchain_families_compatibility: FilterText | None = None
    has_gpu: FilterBool = None
    gpu_arch: FilterText | None = None


class VersionFilters(BaseModel):
    package_uuid: FilterUUID = None
    catalog_uuid: FilterUUID = None
    offering_uuid: FilterUUID = None  # catalogs linked to it
    package_name: FilterText | None = None
    version: FilterText | None = None
    version_exact: FilterText | None = None
    catalog_type: FilterCatalogType = None
    cpu_family: FilterValues = None
    cpu_microarchitecture: FilterValues = None
    toolchain_name: FilterText | None = None
    toolchain_version: FilterText | None = None
    toolchain_families_compatibility: FilterText | None = None
    release_date_after: FilterDate = None
    release_date_before: FilterDate = None
    has_gpu: FilterBool = None
    gpu_arch: FilterText | None = None


class TargetFilters(BaseModel):
    version_uuid: FilterUUID = None
    package_uuid: FilterUUID = None
    catalog_uuid: FilterUUID = None
    offering_uuid: FilterUUID = None  # catalogs linked to it
    cpu_family: FilterValues = None
    cpu_microarchitecture: FilterValues = None
    target_type: FilterText | None = None
    target_name: FilterText | None = None
    target_subtype: FilterText | None = None
    path: FilterText | None = None
    has_gpu: FilterBool = None
    gpu_arch: FilterText | None = None


# The other side of a parent link. Built once: an alias made per request costs more than the
# query it is used in (SQLAlchemy builds a proxy of every column).
_OTHER_PACKAGE = aliased(Package, name="other_package")


def _catalog_id(value: uuid_module.UUID) -> Any:
    return select(Catalog.id).where(Catalog.uuid == value).scalar_subquery()


def any_of(column: Any, values: Sequence[str], *, ignore_case: bool = False) -> Any:
    """`column` equals one of `values` (a multi-valued filter's values are alternatives)."""
    if ignore_case:
        return func.lower(column).in_([value.lower() for value in values])
    return column.in_(values)


def _target_conditions(
    dialect: str,
    cpu_family: Sequence[str] | None,
    cpu_microarchitecture: Sequence[str] | None,
    gpu_arch: str | None,
) -> list[ColumnElement[bool]]:
    """Conditions on one Target row, for the EXISTS filters of packages and versions."""
    conditions: list[ColumnElement[bool]] = []
    if cpu_family:
        conditions += [
            Target.target_type == CPU_TARGET_TYPE,
            any_of(Target.target_name, cpu_family),
        ]
    if cpu_microarchitecture:
        conditions += [
            Target.target_type == CPU_TARGET_TYPE,
            any_of(Target.target_subtype, cpu_microarchitecture),
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
