"""A package's embedded part of the list object, rendered to JSON text: its versions as
Waldur nests them (each with its targets) and its extensions.

One renderer for the list's stored fragments and the retrieve view, so both answer the same
objects. Nothing here depends on the request: an extension's `url` is stored as a path and
`with_base` prefixes it when a page is sent.
"""

from __future__ import annotations

import json
import uuid as uuid_module
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

# Bump when the rendered shape changes: stored fragments of an older FORMAT are rendered on
# the fly until `syncd migrate` or the next sync of their catalog stores them again.
FORMAT = 3  # 3: the whole item (items.py)

PACKAGES_PATH = "/api/marketplace-software-packages/"
# Extension objects are the only ones with a `url`; json.dumps escapes every quote inside a
# string value, so this text occurs in a fragment only where an extension's url begins.
_URL_PREFIX = '"url":"' + PACKAGES_PATH


@dataclass(frozen=True)
class Fragment:
    """JSON text of a package's `extensions` and `versions` lists (extension urls as paths)."""

    extensions: str
    versions: str

    def with_base(self, base: str) -> Fragment:
        if not base or _URL_PREFIX not in self.extensions:
            return self
        prefix = '"url":"' + json.dumps(base, ensure_ascii=False)[1:-1] + PACKAGES_PATH
        return Fragment(self.extensions.replace(_URL_PREFIX, prefix), self.versions)


EMPTY = Fragment("[]", "[]")


def dumps(value: Any) -> str:
    """The wire encoding of every JSON answer (json_response's)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def iso_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def version_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The fields Waldur's version serializer derives from a version's metadata."""
    module = metadata.get("module")
    module = module if isinstance(module, dict) else {}
    toolchain = metadata.get("toolchain")

    def as_list(key: str) -> list[Any]:
        value = metadata.get(key)
        return value if isinstance(value, list) else []

    return {
        "module": module,
        "modulename": str(module.get("full_module_name", "") or ""),
        "required_modules": as_list("required_modules"),
        "extensions": as_list("extensions"),
        "toolchain": toolchain if isinstance(toolchain, dict) else {},
        "toolchain_families_compatibility": as_list("toolchain_families_compatibility"),
    }


# Waldur's Spack loader copies package-wide lists into every version's metadata; syncd keeps
# the dependencies in the version's own column and patches/aliases only where the package has
# any, and composes Waldur's keys when a version is shown.
_SPACK_VERSION_KEYS = (
    "downloads",
    "branch",
    "dependencies",
    "patches",
    "aliases",
    "package_downloads",
)


def version_wire_metadata(
    catalog_type: str,
    metadata: Any,
    dependencies: Any,
    *,
    is_local: bool = False,
    package_downloads: Any = None,
) -> Any:
    """A version's `metadata` as Waldur's loader stored it: for an upstream Spack version
    (source_package), downloads, branch, dependencies, patches, aliases and
    package_downloads (the package's `downloads`, stored once on the package) always there,
    in its order, then the rest; otherwise as stored."""
    if (
        catalog_type != "source_package"
        or is_local
        or not isinstance(metadata, dict)
        or "downloads" not in metadata  # not as the Spack adapter stores it (a hand edit)
    ):
        return metadata
    composed: dict[str, Any] = {
        "downloads": metadata.get("downloads", []),
        "branch": metadata.get("branch", ""),
        "dependencies": dependencies if isinstance(dependencies, list) else [],
        "patches": metadata.get("patches", []),
        "aliases": metadata.get("aliases", []),
        "package_downloads": package_downloads if isinstance(package_downloads, list) else [],
    }
    composed.update((k, v) for k, v in metadata.items() if k not in _SPACK_VERSION_KEYS)
    return composed


# Waldur's Spack loader copies the version's entry and the package's lists into the metadata
# of every version's default target; syncd stores that target's metadata empty and composes
# it from its version's row and its package's categories when the target is shown.
def is_spack_default_target(
    target_type: str, target_name: str, version_metadata: Any, *, is_local: bool
) -> bool:
    """A default build target of an upstream Spack version (whose metadata has `downloads`,
    as the Spack adapter stores it; a hand-made row is shown as stored)."""
    return (
        not is_local
        and target_type == "build_variant"
        and target_name == "default"
        and isinstance(version_metadata, dict)
        and "downloads" in version_metadata
    )


def spack_version_info(version: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The upstream entry of a Spack version as far as syncd keeps it (in upstream's key
    order): `branch` and `repositories` for a branch version, `downloads` (flattened) for a
    release, then `version`."""
    branch = metadata.get("branch")
    downloads = metadata.get("downloads")
    info: dict[str, Any] = {}
    if branch:
        info["branch"] = branch
    if downloads or not branch:
        info["downloads"] = downloads
    if "repositories" in metadata:
        info["repositories"] = metadata["repositories"]
    info["version"] = version
    return info


def default_target_metadata(
    version: str, version_metadata: Mapping[str, Any], dependencies: Any, categories: Any
) -> dict[str, Any]:
    """A Spack default target's `metadata` as Waldur's loader stores it."""
    return {
        "downloads": version_metadata.get("downloads"),
        "dependencies": dependencies if isinstance(dependencies, list) else [],
        "patches": version_metadata.get("patches", []),
        "categories": categories if isinstance(categories, list) else [],
        "version_info": spack_version_info(version, version_metadata),
    }


def target_wire_metadata(row: Any) -> Any:
    """`row`: a target's columns (target_type, target_name, metadata_, is_local) with its
    version's (version, version_metadata, version_dependencies, version_is_local) and its
    package's categories (package_categories). A Spack default target's stored metadata is
    empty; one with anything in it is shown as stored."""
    if row.metadata_ != {} or not is_spack_default_target(
        row.target_type,
        row.target_name,
        row.version_metadata,
        is_local=row.is_local or row.version_is_local,
    ):
        return row.metadata_
    return default_target_metadata(
        row.version, row.version_metadata, row.version_dependencies, row.package_categories
    )


def nested_target(row: Any) -> dict[str, Any]:
    """`row`: uuid, target_type, target_name, target_subtype, location, metadata_,
    gpu_architectures, and what target_wire_metadata reads (an ORM row does not have
    those: a Core row labelled so)."""
    return {
        "uuid": row.uuid.hex,
        "target_type": row.target_type,
        "target_name": row.target_name,
        "target_subtype": row.target_subtype,
        "location": row.location,
        "metadata": target_wire_metadata(row),
        "gpu_architectures": row.gpu_architectures,
    }


def nested_version(
    row: Any, targets: list[dict[str, Any]], metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`row`: uuid, version, module_version, release_date, metadata_; `metadata`: the
    version's wire metadata when it is composed (default: the stored one)."""
    stored = row.metadata_ if metadata is None else metadata
    return {
        "uuid": row.uuid.hex,
        "version": row.version,
        "module_version": row.module_version,
        "release_date": iso_date(row.release_date),
        "targets": targets,
        **version_metadata(stored or {}),
    }


def nested_package(
    path_or_base: str, row_uuid: uuid_module.UUID, name: str, versions: Iterable[str]
) -> dict[str, Any]:
    """A parent or extension as Waldur nests it; `path_or_base` is prefixed to its url."""
    return {
        "uuid": row_uuid.hex,
        "name": name,
        "url": f"{path_or_base}{PACKAGES_PATH}{row_uuid.hex}/",
        # An EESSI extension has a version row per parent module that bundles it (same
        # version string): a client wants each version once, in the nested order.
        "versions": list(dict.fromkeys(versions)),
    }
