"""Rows as both write paths send them, with their content hashes: one encoding, so that a
first import and a later diff agree on every hash and refreshing unchanged data writes nothing.
"""

from __future__ import annotations

import json
from datetime import date
from hashlib import blake2b
from typing import Any

from syncd.domain import PackageRecord, TargetRecord, VersionRecord

# Rows buffered in Python before they are sent to staging: bounds memory, keeps statements few.
BATCH_ROWS = 2000

_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode


def _json(value: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces); empty containers skip the encoder,
    which matters at ~100k rows with mostly empty lists."""
    if not value:
        if isinstance(value, list):
            return "[]"
        if isinstance(value, dict):
            return "{}"
    return _encode(value)


def _digest(own: tuple[str | bool | int | None, ...], *json_parts: str) -> str:
    """Stable hash of a row's own fields: the repr of its scalars (str/None/bool/int have a
    canonical repr) and its JSON texts. Neither contains a raw NUL, so joining is unambiguous."""
    text_ = "\x00".join((repr(own), *json_parts))
    return blake2b(text_.encode(), digest_size=16).hexdigest()


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _package_row(package: PackageRecord, homepage: str | None, version_count: int) -> tuple:
    categories = _json(package.categories)
    licenses = _json(package.licenses)
    maintainers = _json(package.maintainers)
    own = (package.name, package.description, homepage, package.is_extension)
    return (
        package.name,
        package.description,
        homepage,
        categories,
        licenses,
        maintainers,
        package.is_extension,
        _digest(own, categories, licenses, maintainers),
        version_count,
    )


def _version_row(package_name: str, version: VersionRecord, sort_index: int) -> tuple:
    released = _iso(version.release_date)
    dependencies = _json(version.dependencies)
    meta = _json(version.metadata)
    own = (version.version, version.module_version, released)
    return (
        package_name,
        version.version,
        version.module_version,
        released,
        dependencies,
        meta,
        sort_index,
        _digest(own, dependencies, meta),
    )


def _target_row(package_name: str, version: VersionRecord, target: TargetRecord) -> tuple:
    meta = _json(target.metadata)
    gpus = _json(target.gpu_architectures)
    own = (target.target_type, target.target_name, target.target_subtype, target.location)
    return (
        package_name,
        version.version,
        version.module_version,
        target.target_type,
        target.target_name,
        target.target_subtype,
        target.location,
        meta,
        gpus,
        _digest(own, meta, gpus),
    )
