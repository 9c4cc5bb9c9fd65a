"""Spack: packages.spack.io's repology.json as a source_package catalog.

Upstream keeps one version of its data: the catalog version is the date of `last_update`
as YYYY.MM.DD, which is also what `discover` reports. (`fetch_snapshot(version=...)`
cannot choose another: the snapshot carries the label of the data upstream has now, and
callers compare it with what they asked for.) `last_update` is also the snapshot time
(CatalogInfo.snapshot_time) that guards the catalog against a stale mirror.

Records:
- one package per key whose `name` equals the key (alias keys, key != name, are skipped);
  description = summary, homepage = first of homepages ("" stays ""), categories, licenses,
  maintainers; metadata = {"downloads": the package's `downloads`} (shown on each version
  as `package_downloads`, stored once per package);
- one version per entry of `version`, newest first by Spack's version semantics
  (syncd.versioning); branch versions (develop, main, ... with no downloads) are kept.
  `dependencies` is the package's dependency list (as the reference loader does);
  metadata: `downloads` (flattened URL list; odd shapes such as [[]] or nested lists are
  tolerated), `branch` ("" for a release, as Waldur's loader), `repositories` for branch
  versions, `patches` and `aliases` of the package when it has any;
- targets per version, as the reference loader derives them: build_variant/default with
  the first download URL as location ("" for a branch version without downloads);
  platform/windows when categories has "windows"; external/system when it has
  "detectable"; build_system/build-tool when it has "build-tools".

The 22 MB file is streamed from the fetcher's temporary file (adapters/json_stream.py: depth,
size and time limits): `packages` is a generator that holds one package's JSON at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from adapters.base import (
    no_version,
    schema_error,
    string_list,
    upstream_time,
    version_text,
)
from adapters.fetch import Fetcher, FetchResult
from adapters.json_stream import object_members, read_top_level
from syncd.config import Settings
from syncd.domain import (
    CatalogInfo,
    CatalogSnapshot,
    CatalogType,
    PackageRecord,
    TargetRecord,
    VersionRecord,
)
from syncd.versioning import spack_version_key

WHAT = "Spack's repology.json"
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")

# Category -> (target_type, target_name, metadata) of the extra target the reference derives.
CATEGORY_TARGETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "windows": ("platform", "windows", {"supported": True}),
    "detectable": ("external", "system", {"detectable": True}),
    "build-tools": ("build_system", "build-tool", {"category": "build-tools"}),
}


def catalog_label(last_update: str) -> str:
    """ "2026-11-27 05:38:00.052606" -> "2026.11.27"."""
    match = _DATE.search(last_update)
    if match is None:
        raise ValueError(f"no date in last_update {last_update!r}")
    return ".".join(match.groups())


def flatten_urls(value: Any) -> list[str]:
    """Every non-empty string in a download list of any nesting ([[]], [["a"], "b"], None)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item:
                found.append(item)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every version of one package has alike, built once per package and shared by
    its version records (which nobody mutates): a package of 100,000 versions must not
    hold 100,000 copies of its dependency list and category targets."""

    dependencies: list[str]
    category_targets: list[TargetRecord]
    package_metadata: dict[str, Any]


def _shared(package: dict[str, Any]) -> _Shared:
    categories = string_list(package.get("categories"))
    return _Shared(
        dependencies=string_list(package.get("dependencies")),
        category_targets=[
            TargetRecord(kind, name, metadata=dict(meta))
            for category, (kind, name, meta) in CATEGORY_TARGETS.items()
            if category in categories
        ],
        package_metadata={
            meta_key: package[key]
            for key, meta_key in (("patches", "patches"), ("alias", "aliases"))
            if package.get(key)
        },
    )


def _version_record(entry: dict[str, Any], shared: _Shared) -> VersionRecord | None:
    version = version_text(entry.get("version"))
    if version is None:
        return None
    downloads = flatten_urls(entry.get("downloads"))
    metadata: dict[str, Any] = {"downloads": downloads}
    repositories = entry.get("repositories")
    # Every version has a branch, "" for a release, as Waldur's loader stores it.
    branch = entry.get("branch")
    metadata["branch"] = branch if isinstance(branch, str) else ""
    if isinstance(repositories, list):
        metadata["repositories"] = repositories
    metadata.update(shared.package_metadata)
    # Waldur's loader: the first download, else nothing (a branch version such as master).
    location = downloads[0] if downloads else ""
    return VersionRecord(
        version=version,
        dependencies=shared.dependencies,
        metadata=metadata,
        targets=[
            TargetRecord("build_variant", "default", location=location),
            *shared.category_targets,
        ],
    )


def _homepage(value: Any) -> str | None:
    """The first of `homepages` as upstream gives it ("" stays ""); None without one."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return None


def package_record(key: str, package: Any) -> PackageRecord | None:
    """The record of one `packages` member; None for alias keys and unusable entries.
    Takes the version entries out of `package` as it goes: each parsed entry is freed once
    its record exists, so the two are never both held whole."""
    if not isinstance(package, dict) or package.get("name", key) != key:
        return None
    entries = package.pop("version", None)
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        entries = []
    entries.reverse()  # popped from the end: upstream order, first of a version wins
    shared = _shared(package)
    versions: dict[str, VersionRecord] = {}
    left_out: list[str] = []
    while entries:
        entry = entries.pop()
        if isinstance(entry, dict):
            record = _version_record(entry, shared)
            if record is not None:
                versions.setdefault(record.version, record)
            else:
                left_out.append(no_version(entry, "a version entry"))
    summary = package.get("summary")
    return PackageRecord(
        name=key,
        description=summary.strip() if isinstance(summary, str) else "",
        homepage=_homepage(package.get("homepages")),
        categories=string_list(package.get("categories")),
        licenses=string_list(package.get("licenses")),
        maintainers=string_list(package.get("maintainers")),
        versions=sorted(
            versions.values(), key=lambda v: (spack_version_key(v.version), v.version), reverse=True
        ),
        left_out=left_out,
        # Waldur shows it on every version as `package_downloads`; upstream's list is not
        # the versions' downloads put together, so it is kept as given, once per package.
        metadata={"downloads": _list(package.get("downloads"))},
    )


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def iter_packages(result: FetchResult, url: str) -> Iterator[PackageRecord]:
    """Stream the package records of a downloaded repology.json; closes `result` at the end."""
    produced = 0
    try:
        # Numbers as Decimal: a version given as 2.10 keeps its text (version_text).
        for key, package in object_members(result, url, WHAT, "packages"):
            record = package_record(key, package)
            if record is not None:
                produced += 1
                yield record
    finally:
        result.close()
    if produced == 0:
        # An empty upstream is a broken publication, not a reason to empty the catalog.
        raise schema_error(url, WHAT, "'packages' holds no package")


class SpackAdapter:
    name: ClassVar[str] = "Spack"
    catalog_type: ClassVar[CatalogType] = CatalogType.SOURCE_PACKAGE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def default_source(self) -> str:
        return self.settings.spack_source

    def discover(self, fetcher: Fetcher, source: str | None = None) -> list[str]:
        url = source or self.default_source()
        result = fetcher.fetch(url)
        try:
            return [self._header(result, url)[0]]
        finally:
            result.close()

    def fetch_snapshot(
        self,
        fetcher: Fetcher,
        *,
        version: str | None = None,
        source: str | None = None,
        validators: dict[str, Any] | None = None,
    ) -> CatalogSnapshot | None:
        url = source or self.default_source()
        result = fetcher.fetch(url, validators=validators)
        if result.not_modified:
            result.close()  # a same_body result holds a body nobody will read
            return None
        try:
            label, header = self._header(result, url)
        except BaseException:
            result.close()
            raise
        num_packages = header.get("num_packages")
        catalog = CatalogInfo(
            name=self.name,
            version=label,
            catalog_type=self.catalog_type,
            description=(
                f"Spack package repository ({int(num_packages)} packages)"
                if isinstance(num_packages, int | float)
                else "Spack package repository"
            ),
            source_url=url,
            metadata={
                "last_update": header.get("last_update"),
                "num_packages": num_packages,
                "repository_name": header.get("repository_name", "spack"),
                "data_source": url,
                "format": "repology.json",
            },
            rolling=True,
            snapshot_time=upstream_time(header.get("last_update")),
        )
        return CatalogSnapshot(
            catalog=catalog,
            packages=iter_packages(result, url),
            validators={url: result.validators},
        )

    def _header(self, result: FetchResult, url: str) -> tuple[str, dict[str, Any]]:
        header = read_top_level(result, url, WHAT, skip="packages")
        if header.get("packages") is not True:
            raise schema_error(url, WHAT, "it has no 'packages' object")
        last_update = header.get("last_update")
        if not isinstance(last_update, str):
            raise schema_error(url, WHAT, "it has no 'last_update' date")
        try:
            return catalog_label(last_update), header
        except ValueError as exc:
            raise schema_error(url, WHAT, str(exc)) from None
