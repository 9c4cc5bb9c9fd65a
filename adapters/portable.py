"""Portable catalog files (`syncd export`, docs/catalog-export.schema.json) read back as a
snapshot, so that `syncd import-file` loads them through the same service and sync engine
as any upstream: an air-gapped site imports what a connected one exported.

Not an entry-point adapter: the file names its catalog (name, version, type), so the CLI
builds one PortableCatalogFile per file and hands it to the import command. Read with
adapters/json_stream.py, one package at a time: a full Spack export is never held whole.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from adapters.base import schema_error, string_list, upstream_time
from adapters.fetch import Fetcher, FetchResult
from adapters.json_stream import object_members, read_top_level
from syncd.domain import (
    CatalogInfo,
    CatalogSnapshot,
    CatalogType,
    PackageRecord,
    TargetRecord,
    VersionRecord,
)

FORMAT = "syncd-catalog"
FORMAT_VERSION = 1
WHAT = f"a syncd catalog export ({FORMAT} version {FORMAT_VERSION})"


@dataclass(frozen=True)
class ExportHeader:
    """What a file says of its catalog, read before any row is made."""

    info: CatalogInfo
    uuid: str | None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _homepage(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _uuid(value: Any, url: str, where: str) -> str | None:
    if value is None:
        return None
    try:
        return uuid_module.UUID(str(value)).hex
    except ValueError:
        raise schema_error(url, WHAT, f"{where} has uuid {str(value)[:60]!r}, not a uuid") from None


def read_export_header(result: FetchResult, url: str) -> ExportHeader:
    """Validate a whole file (syntax, depth, size) and read its catalog fields."""
    top = read_top_level(result, url, WHAT, skip="packages")
    if top.get("format") != FORMAT:
        raise schema_error(url, WHAT, f"its 'format' is not {FORMAT!r}")
    if top.get("format_version") != FORMAT_VERSION:
        raise schema_error(
            url,
            WHAT,
            f"its format_version is {top.get('format_version')!r}; this syncd reads "
            f"version {FORMAT_VERSION} (export it again with this syncd's version)",
        )
    if top.get("packages") is not True:
        raise schema_error(url, WHAT, "it has no 'packages' object")
    catalog = _dict(top.get("catalog"))
    name, version = _text(catalog.get("name")), _text(catalog.get("version"))
    try:
        catalog_type = CatalogType(_text(catalog.get("catalog_type")))
    except ValueError:
        raise schema_error(url, WHAT, "its catalog has no known catalog_type") from None
    if not name or not version:
        raise schema_error(url, WHAT, "its catalog has no name or no version")
    info = CatalogInfo(
        name=name,
        version=version,
        catalog_type=catalog_type,
        description=_text(catalog.get("description")),
        source_url=_text(catalog.get("source_url")),
        metadata=_dict(catalog.get("metadata")),
        snapshot_time=upstream_time(catalog.get("upstream_snapshot_at")),
    )
    return ExportHeader(info=info, uuid=_uuid(catalog.get("uuid"), url, "the catalog"))


def _target(entry: dict[str, Any], url: str, keep_uuids: bool) -> TargetRecord:
    return TargetRecord(
        target_type=_text(entry.get("target_type")),
        target_name=_text(entry.get("target_name")),
        target_subtype=_text(entry.get("target_subtype")),
        location=_text(entry.get("location")),
        metadata=_dict(entry.get("metadata")),
        gpu_architectures=string_list(entry.get("gpu_architectures")),
        uuid=_uuid(entry.get("uuid"), url, "a target") if keep_uuids else None,
    )


def _version(entry: dict[str, Any], url: str, keep_uuids: bool) -> VersionRecord:
    released = entry.get("release_date")
    dependencies = entry.get("dependencies")
    return VersionRecord(
        version=_text(entry.get("version")),
        module_version=_text(entry.get("module_version")),
        release_date=date.fromisoformat(released) if isinstance(released, str) else None,
        dependencies=dependencies if isinstance(dependencies, list) else [],
        metadata=_dict(entry.get("metadata")),
        targets=[_target(t, url, keep_uuids) for t in entry.get("targets") or [] if t],
        uuid=_uuid(entry.get("uuid"), url, "a version") if keep_uuids else None,
    )


def _package(name: str, entry: Any, url: str, keep_uuids: bool) -> PackageRecord:
    package = _dict(entry)
    return PackageRecord(
        name=name,
        description=_text(package.get("description")),
        # "" stays "" (an upstream's empty homepage, as stored); null stays null.
        homepage=_homepage(package.get("homepage")),
        categories=string_list(package.get("categories")),
        licenses=string_list(package.get("licenses")),
        maintainers=string_list(package.get("maintainers")),
        is_extension=package.get("is_extension") is True,
        metadata=_dict(package.get("metadata")),
        parent_names=string_list(package.get("parents")),
        versions=[_version(v, url, keep_uuids) for v in package.get("versions") or [] if _dict(v)],
        uuid=_uuid(package.get("uuid"), url, f"package {name[:80]!r}") if keep_uuids else None,
    )


def _packages(result: FetchResult, url: str, keep_uuids: bool) -> Iterator[PackageRecord]:
    try:
        for name, entry in object_members(result, url, WHAT, "packages"):
            yield _package(name, entry, url, keep_uuids)
    finally:
        result.close()


class PortableCatalogFile:
    """The adapter of one export file: its name and catalog_type are the file's catalog's,
    so the import command finds, names and types the row as on the site it came from."""

    def __init__(self, header: ExportHeader, url: str, *, keep_uuids: bool) -> None:
        self.header, self.url, self.keep_uuids = header, url, keep_uuids
        self.name = header.info.name
        self.catalog_type = header.info.catalog_type

    @classmethod
    def open(cls, fetcher: Fetcher, url: str, *, keep_uuids: bool) -> PortableCatalogFile:
        result = fetcher.fetch(url)
        try:
            return cls(read_export_header(result, url), url, keep_uuids=keep_uuids)
        finally:
            result.close()

    def default_source(self) -> str:
        return self.url

    def discover(self, fetcher: Fetcher, source: str | None = None) -> list[str]:
        return [self.header.info.version]

    def fetch_snapshot(
        self,
        fetcher: Fetcher,
        *,
        version: str | None = None,
        source: str | None = None,
        validators: dict[str, Any] | None = None,
    ) -> CatalogSnapshot | None:
        url = source or self.url
        result = fetcher.fetch(url, validators=validators)
        if result.not_modified:
            result.close()  # a same_body result holds a body nobody will read
            return None
        try:
            header = read_export_header(result, url)
        except BaseException:
            result.close()
            raise
        return CatalogSnapshot(
            catalog=header.info,
            packages=_packages(result, url, self.keep_uuids),
            validators={url: result.validators},
        )
