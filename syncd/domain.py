"""Plain records that flow from adapters to the sync engine.

Nothing here imports a framework or another syncd module: adapters build these records,
`sync` writes them, and tests construct them by hand.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

# The target_type EESSI's CPU targets carry (as in Waldur's loader); cpu_family and
# cpu_microarchitecture filters only look at these targets.
CPU_TARGET_TYPE = "cpu_architecture"


class CatalogType(enum.StrEnum):
    BINARY_RUNTIME = "binary_runtime"
    SOURCE_PACKAGE = "source_package"
    PACKAGE_MANAGER = "package_manager"

    @property
    def display(self) -> str:
        return _CATALOG_TYPE_DISPLAY[self]


# Who asked for a command (sync_run.trigger): an API action, a scheduler tick, the CLI, or
# any other producer of a message (the default of a message that does not say).
RUN_TRIGGERS = ("api", "scheduler", "message", "cli")

_CATALOG_TYPE_DISPLAY = {
    CatalogType.BINARY_RUNTIME: "Binary Runtime (EESSI)",
    CatalogType.SOURCE_PACKAGE: "Source Package (Spack)",
    CatalogType.PACKAGE_MANAGER: "Package Manager (conda, pip)",
}


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """Where and for what one version is available (a CPU target, a build variant, ...).

    Identity inside a version: (target_type, target_name, target_subtype).
    """

    target_type: str
    target_name: str
    target_subtype: str = ""
    location: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    gpu_architectures: list[str] = field(default_factory=list)
    # The uuid a new row gets (a portable catalog file's, `syncd import-file --keep-uuids`);
    # None: a random one. An existing row keeps its own.
    uuid: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target_type, self.target_name, self.target_subtype)


@dataclass(slots=True)
class VersionRecord:
    """One version of a package. Identity inside a package: (version, module_version).

    `dependencies` holds what the upstream names: package names (Spack) or module objects
    {full_module_name, module_name, module_version} (EESSI), as Waldur stores each.
    `metadata` and `dependencies` hold JSON values; a `Decimal` (how adapters parse JSON
    numbers, see adapters.base.version_text) is written as a JSON number.
    """

    version: str
    module_version: str = ""
    release_date: date | None = None
    dependencies: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    targets: list[TargetRecord] = field(default_factory=list)
    uuid: str | None = None  # as TargetRecord.uuid

    @property
    def key(self) -> tuple[str, str]:
        return (self.version, self.module_version)


@dataclass(slots=True)
class PackageRecord:
    """One package of a catalog. Identity inside a catalog: name.

    `parent_names` names the packages an extension belongs to (same catalog); they are
    resolved to links by the sync engine once every package of the snapshot is known.
    `left_out` says what the adapter could not make a record of and why ("a build without a
    version: ..."): the sync counts each as a skipped record and names the first few in the
    catalog's update_errors, so nothing upstream offers disappears without a trace.
    """

    name: str
    description: str = ""
    homepage: str | None = None
    categories: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    maintainers: list[str] = field(default_factory=list)
    is_extension: bool = False
    parent_names: list[str] = field(default_factory=list)
    versions: list[VersionRecord] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    uuid: str | None = None  # as TargetRecord.uuid
    # Package-level upstream data shown on each version (Spack: {"downloads": [...]}); kept
    # once per package rather than copied into every version.
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CatalogInfo:
    """The catalog-level fields an adapter knows about one upstream version."""

    name: str
    version: str
    catalog_type: CatalogType
    description: str = ""
    source_url: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # True when upstream keeps only its latest data under a moving label (Spack): a refresh
    # then moves the catalog row's version to the label of what it now holds.
    rolling: bool = False
    # When upstream made this data (UTC; EESSI's `timestamp`, Spack's `last_update`), None
    # when the data does not say. The service refuses a snapshot older than the stored one
    # (a stale mirror) and falls back to the files' Last-Modified when this is None.
    snapshot_time: datetime | None = None


@dataclass(slots=True)
class CatalogSnapshot:
    """Everything upstream says about one catalog version.

    `packages` is an iterable so that a large upstream (Spack: ~9k packages, ~44k versions)
    can be streamed; the sync engine consumes it exactly once.
    `validators` are the conditional-request validators (ETag, Last-Modified per URL) of the
    download this snapshot came from; the service stores them only after a successful sync.
    """

    catalog: CatalogInfo
    packages: Iterable[PackageRecord]
    validators: dict[str, Any] = field(default_factory=dict)

    def iter_packages(self) -> Iterator[PackageRecord]:
        return iter(self.packages)


@dataclass(slots=True)
class KindStats:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        return self.created + self.updated + self.deleted


@dataclass(slots=True)
class SyncStats:
    """What one sync did, per kind of row; `duplicates` counts the records left out because
    an earlier one of the snapshot had the same key (a package name, a version's
    (version, module_version), a target's identity), `skipped` the records it could not use
    (a value too long, a build without a version), `sanitised` the values stored altered (a
    NUL replaced), `cut` the values stored cut to SYNCD_MAX_FIELD_CHARS. `warnings` words
    the last three for the catalog's update_errors: a few sentences, each naming its first
    few examples, whatever the snapshot's size."""

    packages: KindStats = field(default_factory=KindStats)
    versions: KindStats = field(default_factory=KindStats)
    targets: KindStats = field(default_factory=KindStats)
    parent_links: KindStats = field(default_factory=KindStats)
    duplicates: int = 0
    skipped: int = 0
    sanitised: int = 0
    cut: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        kinds = (self.packages, self.versions, self.targets, self.parent_links)
        return sum(k.written for k in kinds)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            name: {
                "created": k.created,
                "updated": k.updated,
                "deleted": k.deleted,
                "unchanged": k.unchanged,
            }
            for name, k in (
                ("packages", self.packages),
                ("versions", self.versions),
                ("targets", self.targets),
                ("parent_links", self.parent_links),
            )
        }
