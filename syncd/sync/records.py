"""Which of a snapshot's records are written, shared by both write paths so that they keep
the same rows: schema length limits, first of a key wins, a bounded account of what was left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from syncd.db.tables import Package, Target, Version
from syncd.domain import CatalogSnapshot, PackageRecord, TargetRecord, VersionRecord


def _limit(column: Any) -> int:
    return int(column.type.length)


_PACKAGE_NAME_MAX = _limit(Package.__table__.c.name)
_HOMEPAGE_MAX = _limit(Package.__table__.c.homepage)
_VERSION_MAX = _limit(Version.__table__.c.version)
_MODULE_VERSION_MAX = _limit(Version.__table__.c.module_version)
_TARGET_MAX = (
    ("target_type", _limit(Target.__table__.c.target_type)),
    ("target_name", _limit(Target.__table__.c.target_name)),
    ("target_subtype", _limit(Target.__table__.c.target_subtype)),
    ("location", _limit(Target.__table__.c.location)),
)


def _version_problem(version: VersionRecord) -> str | None:
    if len(version.version) > _VERSION_MAX:
        return f"version longer than {_VERSION_MAX} characters"
    if len(version.module_version) > _MODULE_VERSION_MAX:
        return f"module_version longer than {_MODULE_VERSION_MAX} characters"
    return None


def _target_problem(target: TargetRecord) -> str | None:
    for attr, limit in _TARGET_MAX:
        if len(getattr(target, attr)) > limit:
            return f"{attr} longer than {limit} characters"
    return None


@dataclass(slots=True)
class _Staged:
    """What went into staging, and what was left out (logged: a count and a few examples,
    so that a broken upstream cannot fill memory with messages)."""

    packages: int = 0
    versions: int = 0
    targets: int = 0
    parent_links: int = 0
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)

    def skip(self, why: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(why)

    def duplicate(self, what: str) -> None:
        """A record whose key an earlier one had: the earlier is kept. Counted and named,
        because a collapse loses upstream data (two builds, one row)."""
        self.duplicates += 1
        if len(self.duplicate_examples) < 5:
            self.duplicate_examples.append(what)


def _kept_packages(snapshot: CatalogSnapshot, staged: _Staged) -> Iterator[PackageRecord]:
    """The snapshot's packages that are written: names that fit, first one of a name wins.
    Only the set of names seen is held, not the packages."""
    seen: set[str] = set()
    for package in snapshot.iter_packages():
        if len(package.name) > _PACKAGE_NAME_MAX:
            staged.skip(
                f"package {package.name[:80]!r}: name longer than {_PACKAGE_NAME_MAX} characters"
            )
            continue
        if package.name in seen:
            staged.duplicate(f"package {package.name!r}")
            continue
        seen.add(package.name)
        yield package


_Kept = tuple[str | None, list[tuple[VersionRecord, list[TargetRecord]]], list[str]]


def _keep(staged: _Staged, package: PackageRecord) -> _Kept:
    """One package's rows that are written (homepage, versions newest first with their
    targets, parent names), counted into `staged`. A version's position in the list is its
    sort_index (0 = newest): positions among the versions kept, so without gaps."""
    name = package.name
    versions: list[tuple[VersionRecord, list[TargetRecord]]] = []
    seen_versions: set[tuple[str, str]] = set()
    for version in package.versions:
        problem = _version_problem(version)
        if problem:
            staged.skip(f"package {name!r} version {version.version[:80]!r}: {problem}")
            continue
        if version.key in seen_versions:
            staged.duplicate(f"package {name!r} version {version.key!r}")
            continue
        seen_versions.add(version.key)
        targets: list[TargetRecord] = []
        seen_targets: set[tuple[str, str, str]] = set()
        for target in version.targets:
            problem = _target_problem(target)
            if problem:
                staged.skip(f"package {name!r} {version.version!r} target: {problem}")
                continue
            if target.key in seen_targets:
                staged.duplicate(f"package {name!r} version {version.key!r} target {target.key!r}")
                continue
            seen_targets.add(target.key)
            targets.append(target)
        versions.append((version, targets))
        staged.targets += len(targets)
    homepage = package.homepage
    if homepage is not None and len(homepage) > _HOMEPAGE_MAX:
        staged.skip(f"package {name!r}: homepage too long, left empty")
        homepage = None
    staged.packages += 1
    staged.versions += len(versions)
    parents = list(dict.fromkeys(p for p in package.parent_names if p != name))
    return homepage, versions, parents
