"""Rows as both write paths send them, with their content hashes: one encoding, so that a
first import and a later diff agree on every hash and refreshing unchanged data writes nothing.
"""

from __future__ import annotations

import json
import uuid as uuid_module
from datetime import date
from decimal import Decimal
from hashlib import blake2b
from typing import Any, Protocol

from syncd.domain import PackageRecord, TargetRecord, VersionRecord
from syncd.sync.field_limit import cut_strings, cut_text
from syncd.sync.nul import ESCAPED_NUL, without_nul

# Rows buffered in Python before they are sent to staging: bounds memory, keeps statements few.
BATCH_ROWS = 2000


def _plain(value: Any) -> Any:
    # Adapters parse JSON numbers as Decimal, so that a version keeps its source text
    # ("2.10"); elsewhere they stay numbers, as a float parser would have made them.
    return float(value) if isinstance(value, Decimal) else str(value)


_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
).encode


class Notes(Protocol):
    """Where values were stored altered (syncd/sync/records.py's _Staged): NUL replaced
    (syncd/sync/nul.py), or cut to `max_field_chars` (syncd/sync/field_limit.py)."""

    max_field_chars: int

    def sanitise(
        self,
        field_: str,
        package: str | None,
        version: str | None = None,
        target: tuple[str, str, str] | None = None,
    ) -> None: ...

    def cut(
        self,
        field_: str,
        package: str | None,
        version: str | None = None,
        target: tuple[str, str, str] | None = None,
    ) -> None: ...


def _json(value: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces); empty containers skip the encoder,
    which matters at ~100k rows with mostly empty lists."""
    if not value:
        if isinstance(value, list):
            return "[]"
        if isinstance(value, dict):
            return "{}"
    return _encode(value)


def _clean_json(
    value: Any,
    notes: Notes,
    field: str,
    package: str,
    version: str | None = None,
    target: tuple[str, str, str] | None = None,
) -> str:
    """`_json(value)`, with NUL replaced (syncd/sync/nul.py) and strings cut to the field
    limit (syncd/sync/field_limit.py), `notes` told where. The encoder escapes NUL, so one
    substring search of the text finds it at any depth; and no string is longer than the
    text that holds it, so a short text needs no further look."""
    text_ = _json(value)
    if len(text_) > notes.max_field_chars:
        value, cut = cut_strings(value, notes.max_field_chars)
        if cut:
            notes.cut(field, package, version, target)
            text_ = _json(value)
    if ESCAPED_NUL in text_:
        clean = _json(without_nul(value))
        if clean != text_:
            notes.sanitise(field, package, version, target)
            return clean
    return text_


def _digest(own: tuple[str | bool | int | None, ...], *json_parts: str) -> str:
    """Stable hash of a row's own fields: the repr of its scalars (str/None/bool/int have a
    canonical repr) and its JSON texts. Neither contains a raw NUL (a repr escapes it, the
    JSON encoder too), so joining is unambiguous."""
    text_ = "\x00".join((repr(own), *json_parts))
    return blake2b(text_.encode(), digest_size=16).hexdigest()


def given_uuid(value: str | None) -> str | None:
    """A record's own uuid (TargetRecord.uuid) as the 32 hex digits both backends parse;
    None when it has none or it is not a uuid (the row then gets a random one)."""
    if not value:
        return None
    try:
        return uuid_module.UUID(value).hex
    except ValueError:
        return None


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _package_row(
    package: PackageRecord, homepage: str | None, version_count: int, notes: Notes
) -> tuple:
    name = package.name
    categories = _clean_json(package.categories, notes, "categories", name)
    licenses = _clean_json(package.licenses, notes, "licenses", name)
    maintainers = _clean_json(package.maintainers, notes, "maintainers", name)
    metadata = _clean_json(package.metadata, notes, "metadata", name)
    description, cut = cut_text(package.description, notes.max_field_chars)
    if cut:
        notes.cut("description", name)
    own = (package.name, description, homepage, package.is_extension)
    return (
        package.name,
        description,
        homepage,
        categories,
        licenses,
        maintainers,
        metadata,
        package.is_extension,
        _digest(own, categories, licenses, maintainers, metadata),
        version_count,
    )


def _version_row(package_name: str, version: VersionRecord, sort_index: int, notes: Notes) -> tuple:
    released = _iso(version.release_date)
    number = version.version
    dependencies = _clean_json(version.dependencies, notes, "dependencies", package_name, number)
    meta = _clean_json(version.metadata, notes, "metadata", package_name, number)
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


def _target_row(
    package_name: str, version: VersionRecord, target: TargetRecord, notes: Notes
) -> tuple:
    number, key = version.version, target.key
    meta = _clean_json(target.metadata, notes, "metadata", package_name, number, key)
    gpus = _clean_json(
        target.gpu_architectures, notes, "gpu_architectures", package_name, number, key
    )
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
