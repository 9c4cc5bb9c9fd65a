"""The reference's filters and ordering keys of the package, version and target lists.

Kept apart from the SELECTs because they are the endpoints' vocabulary: the routes publish the
ordering keys in their help, and the EXISTS conditions on targets serve two lists alike.
`dialect` picks the JSON spelling (see filters.py).
"""

from __future__ import annotations

import uuid as uuid_module
from datetime import date
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import aliased

from syncd.api.filters import CPU_TARGET_TYPE, json_array_contains
from syncd.api.schemas import FilterText
from syncd.db.tables import Catalog, Package, Target, Version
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
    query: FilterText | None = None
    name: FilterText | None = None
    name_exact: FilterText | None = None
    description: FilterText | None = None
    catalog_uuid: uuid_module.UUID | None = None
    offering_uuid: uuid_module.UUID | None = None  # catalogs linked to it
    catalog_name: FilterText | None = None
    catalog_version: FilterText | None = None
    catalog_type: CatalogType | None = None
    is_extension: bool | None = None
    parent_software_uuid: uuid_module.UUID | None = None
    has_version: FilterText | None = None
    cpu_family: FilterText | None = None
    cpu_microarchitecture: FilterText | None = None
    category: FilterText | None = None
    license: FilterText | None = None
    toolchain_name: FilterText | None = None
    has_gpu: bool | None = None
    gpu_arch: FilterText | None = None


class VersionFilters(BaseModel):
    package_uuid: uuid_module.UUID | None = None
    catalog_uuid: uuid_module.UUID | None = None
    offering_uuid: uuid_module.UUID | None = None  # catalogs linked to it
    package_name: FilterText | None = None
    version: FilterText | None = None
    version_exact: FilterText | None = None
    catalog_type: CatalogType | None = None
    cpu_family: FilterText | None = None
    cpu_microarchitecture: FilterText | None = None
    toolchain_name: FilterText | None = None
    toolchain_version: FilterText | None = None
    release_date_after: date | None = None
    release_date_before: date | None = None
    has_gpu: bool | None = None
    gpu_arch: FilterText | None = None


class TargetFilters(BaseModel):
    version_uuid: uuid_module.UUID | None = None
    package_uuid: uuid_module.UUID | None = None
    catalog_uuid: uuid_module.UUID | None = None
    offering_uuid: uuid_module.UUID | None = None  # catalogs linked to it
    cpu_family: FilterText | None = None
    cpu_microarchitecture: FilterText | None = None
    target_type: FilterText | None = None
    target_name: FilterText | None = None
    target_subtype: FilterText | None = None
    path: FilterText | None = None
    has_gpu: bool | None = None
    gpu_arch: FilterText | None = None


# The other side of a parent link. Built once: an alias made per request costs more than the
# query it is used in (SQLAlchemy builds a proxy of every column).
_OTHER_PACKAGE = aliased(Package, name="other_package")


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
