"""Rows into the JSON objects Waldur's clients parse (field names and shapes of the reference).

uuids are 32 hex digits, datetimes ISO 8601 in UTC, `url`s absolute. Version objects derive
`module`, `toolchain`, ... from the version's metadata as the reference's serializer does.
"""

from __future__ import annotations

import uuid as uuid_module
from typing import Any

from adapters.eessi import split_cpu_arch
from syncd.db.tables import Catalog, Target, Version
from syncd.domain import CatalogType
from syncd.readmodel.fragments import (
    iso_date,
    nested_target,
    version_metadata,
    version_wire_metadata,
)
from syncd.readmodel.fragments import (
    nested_package as nested_package,
)
from syncd.readmodel.fragments import (
    nested_version as nested_version,
)
from syncd.readmodel.items import iso_datetime as iso_datetime
from syncd.readmodel.items import link as link
from syncd.readmodel.items import package_object
from syncd.readmodel.items import type_display as type_display
from syncd.redaction import redact_urls

CATALOGS = "/api/marketplace-software-catalogs/"
PACKAGES = "/api/marketplace-software-packages/"
VERSIONS = "/api/marketplace-software-versions/"
TARGETS = "/api/marketplace-software-targets/"

# One builder of the package object: the stored items' (syncd/readmodel/items.py).
package = package_object


def hex_uuid(value: uuid_module.UUID) -> str:
    return value.hex


def parse_uuid(text: str) -> uuid_module.UUID | None:
    """A path's uuid, hyphenated or 32 hex digits; None when it is neither."""
    try:
        return uuid_module.UUID(text)
    except ValueError:
        return None


def catalog(base: str, row: Catalog) -> dict[str, Any]:
    return {
        "url": link(base, CATALOGS, row.uuid),
        "uuid": row.uuid.hex,
        "created": iso_datetime(row.created),
        "modified": iso_datetime(row.modified),
        "name": row.name,
        "version": row.version,
        "catalog_type": row.catalog_type,
        "catalog_type_display": type_display(row.catalog_type),
        # Stored with its credentials (the worker needs them), shown without (syncd.redaction).
        "source_url": redact_urls(row.source_url),
        "description": row.description,
        "metadata": row.metadata_,
        "auto_update_enabled": row.auto_update_enabled,
        "last_update_attempt": iso_datetime(row.last_update_attempt),
        "last_successful_update": iso_datetime(row.last_successful_update),
        "update_errors": redact_urls(row.update_errors),
        "package_count": row.package_count,
        "version_count": row.version_count,
        "target_count": row.target_count,
        # Waldur's web UI offers CPU family/microarchitecture restrictions only where true.
        "supports_cpu_target_restrictions": row.catalog_type == CatalogType.BINARY_RUNTIME,
    }


def version(
    base: str,
    row: Version,
    *,
    package_uuid: uuid_module.UUID,
    package_name: str,
    catalog_uuid: uuid_module.UUID,
    catalog_type: str,
    target_count: int,
    package_metadata: Any = None,
) -> dict[str, Any]:
    package_downloads = (
        package_metadata.get("downloads") if isinstance(package_metadata, dict) else None
    )
    return {
        "url": link(base, VERSIONS, row.uuid),
        "uuid": row.uuid.hex,
        "created": iso_datetime(row.created),
        "modified": iso_datetime(row.modified),
        "package": link(base, PACKAGES, package_uuid),
        "package_uuid": package_uuid.hex,
        "package_name": package_name,
        "catalog_uuid": catalog_uuid.hex,
        "catalog_type": catalog_type,
        "version": row.version,
        "module_version": row.module_version,
        "release_date": iso_date(row.release_date),
        "dependencies": row.dependencies,
        "metadata": version_wire_metadata(
            catalog_type,
            row.metadata_,
            row.dependencies,
            is_local=row.is_local,
            package_downloads=package_downloads,
        ),
        "target_count": target_count,
        "is_local": row.is_local,
        **version_metadata(row.metadata_ or {}),
    }


def target(
    base: str,
    row: Target,
    *,
    version_uuid: uuid_module.UUID,
    package_uuid: uuid_module.UUID,
    package_name: str,
) -> dict[str, Any]:
    return {
        "url": link(base, TARGETS, row.uuid),
        "created": iso_datetime(row.created),
        "modified": iso_datetime(row.modified),
        "version": link(base, VERSIONS, version_uuid),
        "version_uuid": version_uuid.hex,
        "package_uuid": package_uuid.hex,
        "package_name": package_name,
        "is_local": row.is_local,
        **nested_target(row),
    }


def cpu_targets(row: Catalog) -> list[dict[str, str]]:
    """CPU family / microarchitecture choices of a binary runtime, from its architectures_map.

    As Waldur's cpu_targets_for_catalog: only the map's entry for the catalog's own version
    counts, {hardware: build} or a list of paths (each mapped to itself); a map not keyed by
    the catalog's version gives none. Family and microarchitecture are those of the build
    (the targets a client filters on are builds), `full_arch` is the hardware path, sorted
    by it. Other catalogs have none.
    """
    if row.catalog_type != CatalogType.BINARY_RUNTIME:
        return []
    arch_map = (row.metadata_ or {}).get("architectures_map")
    if not isinstance(arch_map, dict):
        return []
    per_version = arch_map.get(row.version)
    if not isinstance(per_version, dict | list):
        return []
    found: list[dict[str, str]] = []
    for hardware, build in sorted(_hardware_builds(per_version), key=lambda pair: pair[0]):
        family, micro = split_cpu_arch(build)
        found.append({"cpu_family": family, "cpu_microarchitecture": micro, "full_arch": hardware})
    return found


def _hardware_builds(arch_map: dict[str, Any] | list[Any]) -> list[tuple[str, str]]:
    """(hardware path, build path) pairs; an empty build falls back to the hardware path."""
    if isinstance(arch_map, list):
        return [(path, path) for path in arch_map if isinstance(path, str) and path]
    return [
        (hardware, build if isinstance(build, str) and build else hardware)
        for hardware, build in arch_map.items()
        if isinstance(hardware, str) and hardware
    ]
