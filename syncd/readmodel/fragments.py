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
FORMAT = 1

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
_SPACK_VERSION_KEYS = ("downloads", "branch", "dependencies", "patches", "aliases")


def version_wire_metadata(
    catalog_type: str, metadata: Any, dependencies: Any, *, is_local: bool = False
) -> Any:
    """A version's `metadata` as Waldur's loader stored it: for an upstream Spack version
    (source_package), downloads, branch, dependencies, patches and aliases always there, in
    its order, then the rest; otherwise as stored."""
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
    }
    composed.update((k, v) for k, v in metadata.items() if k not in _SPACK_VERSION_KEYS)
    return composed


def nested_target(row: Any) -> dict[str, Any]:
    """`row`: uuid, target_type, target_name, target_subtype, location, metadata_,
    gpu_architectures (an ORM row or a Core row labelled so)."""
    return {
        "uuid": row.uuid.hex,
        "target_type": row.target_type,
        "target_name": row.target_name,
        "target_subtype": row.target_subtype,
        "location": row.location,
        "metadata": row.metadata_,
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
