"""Which of a snapshot's records are written, shared by both write paths so that they keep
the same rows: no NUL (syncd/sync/nul.py), schema length limits, the field limit
(syncd/sync/field_limit.py), first of a key wins, and a bounded account of what was left out
or altered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from syncd.config import DEFAULT_MAX_FIELD_CHARS
from syncd.db.tables import Package, Target, Version
from syncd.domain import CatalogSnapshot, PackageRecord, TargetRecord, VersionRecord
from syncd.sync.nul import NUL, clean_text


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
_TYPE_MAX, _NAME_MAX, _SUBTYPE_MAX, _LOCATION_MAX = (limit for _, limit in _TARGET_MAX)


# The text fields of each record; JSON fields are cleaned when rows are encoded (rows.py).
_PACKAGE_TEXT = ("name", "description", "homepage", "parent_names")
_VERSION_TEXT = ("version", "module_version")
_TARGET_TEXT = ("target_type", "target_name", "target_subtype", "location")


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


_R = TypeVar("_R", PackageRecord, VersionRecord, TargetRecord)
_EXAMPLES = 5


def _without_nul(record: _R, attrs: tuple[str, ...]) -> tuple[_R, list[str]]:
    """`record` with NUL replaced in its text fields `attrs`, and the fields it was in.
    Called only when a quick test found one: a copy, the adapter's record stays as it was."""
    fixed: dict[str, Any] = {}
    for attr in attrs:
        value = getattr(record, attr)
        if isinstance(value, str) and NUL in value:
            fixed[attr] = clean_text(value)
        elif isinstance(value, list) and any(NUL in v for v in value):
            fixed[attr] = [clean_text(v) for v in value]
    return replace(record, **fixed), list(fixed)


def _where(package: str | None, version: str | None, target: tuple[str, str, str] | None) -> str:
    where = "the catalog's" if package is None else f"package {package!r}"
    if version is not None:
        where += f" version {version!r}"
    if target is not None:
        where += f" target {target!r}"
    return where


def _listed(examples: list[str], total: int) -> str:
    more = total - len(examples)
    return "; ".join(examples) + (f"; and {more} more" if more else "")


@dataclass(slots=True)
class _Staged:
    """What went into staging, what was left out and what was stored altered (logged and
    worded for update_errors: a count and a few examples, so that a broken upstream cannot
    fill memory with messages)."""

    packages: int = 0
    versions: int = 0
    targets: int = 0
    parent_links: int = 0
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    sanitised: int = 0
    sanitised_examples: list[str] = field(default_factory=list)
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    # Rows sent to staging's version and target tables (fewer than `versions` / `targets`
    # when packages were skipped: syncd/sync/versions_hash.py).
    version_rows: int = 0
    target_rows: int = 0
    unchanged_by_hash: int = 0  # packages whose versions and targets were not staged
    cut_values: int = 0
    cut_examples: list[str] = field(default_factory=list)

    def skip(self, why: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < _EXAMPLES:
            self.skipped_examples.append(why)

    def sanitise(
        self,
        field_: str,
        package: str | None,
        version: str | None = None,
        target: tuple[str, str, str] | None = None,
    ) -> None:
        """A value stored with its NUL replaced; `package` None: the catalog's own field."""
        self.sanitised += 1
        if len(self.sanitised_examples) < _EXAMPLES:
            self.sanitised_examples.append(f"{_where(package, version, target)} {field_}")

    def cut(
        self,
        field_: str,
        package: str | None,
        version: str | None = None,
        target: tuple[str, str, str] | None = None,
    ) -> None:
        """A value stored cut to max_field_chars (syncd/sync/field_limit.py)."""
        self.cut_values += 1
        if len(self.cut_examples) < _EXAMPLES:
            self.cut_examples.append(f"{_where(package, version, target)} {field_}")

    def warnings(self) -> list[str]:
        """The update_errors sentences of a sync that succeeded with data left out or
        altered (duplicates are not among them: they are the upstream's own collapses)."""
        found = []
        if self.sanitised:
            found.append(
                f"{self.sanitised} upstream values held NUL characters, stored with U+FFFD in "
                f"their place: {_listed(self.sanitised_examples, self.sanitised)}."
            )
        if self.cut_values:
            found.append(
                f"{self.cut_values} upstream values were longer than {self.max_field_chars} "
                "characters (SYNCD_MAX_FIELD_CHARS), stored cut to that length: "
                f"{_listed(self.cut_examples, self.cut_values)}."
            )
        if self.skipped:
            found.append(
                f"{self.skipped} upstream records were left out: "
                f"{_listed(self.skipped_examples, self.skipped)}."
            )
        return found

    def duplicate(self, what: str) -> None:
        """A record whose key an earlier one had: the earlier is kept. Counted and named,
        because a collapse loses upstream data (two builds, one row)."""
        self.duplicates += 1
        if len(self.duplicate_examples) < _EXAMPLES:
            self.duplicate_examples.append(what)


def _kept_packages(snapshot: CatalogSnapshot, staged: _Staged) -> Iterator[PackageRecord]:
    """The snapshot's packages that are written: names that fit, first one of a name wins.
    Only the set of names seen is held, not the packages."""
    seen: set[str] = set()
    for package in snapshot.iter_packages():
        if (
            NUL in package.name
            or NUL in package.description
            or (package.homepage and NUL in package.homepage)
            or any(NUL in p for p in package.parent_names)
        ):
            package, fields = _without_nul(package, _PACKAGE_TEXT)
            for name in fields:
                staged.sanitise(name, package.name)
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


_Kept = tuple[str | None, list[VersionRecord], list[str]]


def _keep(staged: _Staged, package: PackageRecord) -> _Kept:
    """One package's rows that are written (homepage, versions newest first, each holding
    the targets kept, parent names), counted into `staged`. A version's position in the list
    is its sort_index (0 = newest): positions among the versions kept, so without gaps.
    Records are copied only when something of theirs is left out or altered: a package of
    100,000 versions is held once, not twice."""
    name = package.name
    for why in package.left_out:
        staged.skip(f"package {name!r}: {why}")
    versions: list[VersionRecord] = []
    seen_versions: set[tuple[str, str] | str] = set()
    for version in package.versions:
        if NUL in version.version or NUL in version.module_version:
            version, fields = _without_nul(version, _VERSION_TEXT)
            for attr in fields:
                staged.sanitise(attr, name, version.version)
        problem = _version_problem(version)
        if problem:
            staged.skip(f"package {name!r} version {version.version[:80]!r}: {problem}")
            continue
        # The version string alone where there is no module_version (Spack): no key tuple
        # per version held (a str never equals a tuple, so the two forms cannot collide).
        key = version.key if version.module_version else version.version
        if key in seen_versions:
            staged.duplicate(f"package {name!r} version {version.key!r}")
            continue
        seen_versions.add(key)
        targets: list[TargetRecord] = []
        seen_targets: set[tuple[str, str, str]] = set()
        altered = False
        # The checks of each field inlined: this loop runs for every target (EESSI has
        # 120,000), and a function call or a property per check was most of its time.
        for target in version.targets:
            kind, tname, subtype, where = (
                target.target_type,
                target.target_name,
                target.target_subtype,
                target.location,
            )
            if NUL in kind or NUL in tname or NUL in subtype or NUL in where:
                altered = True
                target, fields = _without_nul(target, _TARGET_TEXT)
                for attr in fields:
                    staged.sanitise(attr, name, version.version, target.key)
                kind, tname, subtype, where = target.target_type, target.target_name, \
                    target.target_subtype, target.location  # fmt: skip
            if (
                len(kind) > _TYPE_MAX
                or len(tname) > _NAME_MAX
                or len(subtype) > _SUBTYPE_MAX
                or len(where) > _LOCATION_MAX
            ):
                staged.skip(
                    f"package {name!r} {version.version!r} target: {_target_problem(target)}"
                )
                continue
            identity = (kind, tname, subtype)
            if identity in seen_targets:
                staged.duplicate(f"package {name!r} version {version.key!r} target {identity!r}")
                continue
            seen_targets.add(identity)
            targets.append(target)
        if altered or len(targets) != len(version.targets):
            version = replace(version, targets=targets)
        versions.append(version)
        staged.targets += len(targets)
    homepage = package.homepage
    if homepage is not None and len(homepage) > _HOMEPAGE_MAX:
        staged.skip(f"package {name!r}: homepage too long, left empty")
        homepage = None
    staged.packages += 1
    staged.versions += len(versions)
    parents = list(dict.fromkeys(p for p in package.parent_names if p != name))
    return homepage, versions, parents
