"""What a sync changed, read inside its own transaction: the sync history's changes (issue 15)
and the dry run's plan (syncd/sync/planning.py) come from this one tracker.

The kinds: package_added, package_removed, package_updated (with the fields that changed),
version_added, version_removed, version_updated (with its fields), and target_added /
target_removed summarised per version (a count of targets and their names).

Only the rows the diff touches are read, so that recording the changes of a 1% refresh
costs a fraction of the refresh (bench/bench_sync.py, `change1+changes`), not a read of the
whole catalog. The differ (diff.py) calls the tracker at three points: before its updates
(the old and new values of the rows whose hash differs: their changed fields), before its
deletes (the rows it is about to delete, the same conditions as its DELETEs), and at the
end (the rows it inserted: `created` = the sync's time).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, bindparam, text

from syncd.sync.versions_hash import in_play_version

CHANGE_KINDS = (
    "package_added",
    "package_removed",
    "package_updated",
    "version_added",
    "version_removed",
    "version_updated",
    "target_added",
    "target_removed",
)
# Changes named per kind for a dry run; the rest of a kind is only counted (a plan of a full
# Spack refresh must stay small). The sync history keeps them all (`Changes.items`).
NAMED_PER_KIND = 1000
# Target names a target_added / target_removed change lists; `targets` counts them all.
NAMES_PER_CHANGE = 20

# (column, JSON?) of the fields an update may change, as the diff's UPDATEs write them.
_PACKAGE_FIELDS = (
    ("description", False),
    ("homepage", False),
    ("categories", True),
    ("licenses", True),
    ("maintainers", True),
    ("metadata", True),
    ("is_extension", False),
    ("version_count", False),
    ("extension_count", False),
)
_VERSION_FIELDS = (
    ("release_date", False),
    ("dependencies", True),
    ("metadata", True),
    ("sort_index", False),
)


def _pairs(alias: str, fields: Iterable[tuple[str, bool]]) -> str:
    return ", ".join(f"{alias}.{name}, s.{name} AS new_{name}" for name, _ in fields)


# The rows diff.py's _UPDATE_PACKAGES / _UPDATE_PACKAGE_COUNTS are about to rewrite.
_PACKAGES_UPDATED = f"""
SELECT p.name, {_pairs("p", _PACKAGE_FIELDS)}
FROM package AS p JOIN stage_package AS s ON s.name = p.name
WHERE p.catalog_id = :c AND (p.content_hash <> s.content_hash
    OR p.version_count <> s.version_count OR p.extension_count <> s.extension_count)
"""
# ... _UPDATE_VERSIONS / _UPDATE_ORDER (stage_version.package_id resolved).
_VERSIONS_UPDATED = f"""
SELECT p.name, v.version, v.module_version, {_pairs("v", _VERSION_FIELDS)}
FROM version AS v JOIN stage_version AS s ON s.package_id = v.package_id
    AND s.version = v.version AND s.module_version = v.module_version
JOIN package AS p ON p.id = v.package_id
WHERE v.catalog_id = :c AND (v.content_hash <> s.content_hash OR v.sort_index <> s.sort_index)
"""
# ... _DELETE_PACKAGES / _DELETE_VERSIONS / _DELETE_TARGETS (the same conditions; a
# target's skipped package is its version's, whose package is joined here).
_PACKAGES_REMOVED = """
SELECT name FROM package WHERE catalog_id = :c AND NOT is_local
  AND NOT EXISTS (SELECT 1 FROM stage_package AS s WHERE s.name = package.name)
"""
_VERSIONS_REMOVED = f"""
SELECT p.name, v.version, v.module_version FROM version AS v
JOIN package AS p ON p.id = v.package_id
WHERE v.catalog_id = :c AND NOT v.is_local AND {in_play_version("v")}
  AND NOT EXISTS (SELECT 1 FROM stage_version AS s WHERE s.package_id = v.package_id
    AND s.version = v.version AND s.module_version = v.module_version)
"""
_TARGETS_REMOVED = f"""
SELECT p.name, v.version, v.module_version, t.target_name FROM target AS t
JOIN version AS v ON v.id = t.version_id JOIN package AS p ON p.id = v.package_id
WHERE t.catalog_id = :c AND NOT t.is_local AND {in_play_version("v")}
  AND NOT EXISTS (SELECT 1 FROM stage_target AS s WHERE s.version_id = t.version_id
    AND s.target_type = t.target_type AND s.target_name = t.target_name
    AND s.target_subtype = t.target_subtype)
"""
# The rows the diff inserted.
_PACKAGES_ADDED = "SELECT name FROM package WHERE catalog_id = :c AND created = :now"
_VERSIONS_ADDED = """
SELECT p.name, v.version, v.module_version FROM version AS v
JOIN package AS p ON p.id = v.package_id WHERE v.catalog_id = :c AND v.created = :now
"""
_TARGETS_ADDED = """
SELECT p.name, v.version, v.module_version, t.target_name FROM target AS t
JOIN version AS v ON v.id = t.version_id JOIN package AS p ON p.id = v.package_id
WHERE t.catalog_id = :c AND t.created = :now
"""

VersionKey = tuple[str, str, str]  # package name, version, module version


@dataclass(frozen=True)
class Change:
    kind: str
    package: str
    version: str = ""
    module_version: str = ""
    targets: int = 0  # target_added / target_removed: how many of the version's targets
    names: tuple[str, ...] = ()  # ... and the first NAMES_PER_CHANGE of their names
    fields: tuple[str, ...] = ()  # *_updated: the fields that changed

    def as_dict(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {"change": self.kind, "package_name": self.package}
        if self.kind.startswith(("version", "target")):
            out["version"] = self.version
            out["module_version"] = self.module_version
        if self.kind.startswith("target"):
            out["targets"] = self.targets
        return out

    def details(self) -> dict[str, Any]:
        """sync_change.details: the fields of an update, the targets of a version."""
        if self.kind.endswith("_updated"):
            return {"fields": list(self.fields)}
        if self.kind.startswith("target"):
            return {"targets": self.targets, "names": list(self.names)}
        return {}


@dataclass
class Changes:
    """Every change (`items`, each kind sorted by name), and per kind the total and the first
    NAMED_PER_KIND (the dry run's listing). `first_import`: the catalog had no rows, and the
    sync history records one catalog_imported change instead of a row per package."""

    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGE_KINDS, 0))
    named: dict[str, list[Change]] = field(default_factory=lambda: {k: [] for k in CHANGE_KINDS})
    items: list[Change] = field(default_factory=list)
    first_import: bool = False

    def add(self, changes: list[Change]) -> None:
        for change in sorted(changes, key=lambda c: (c.package, c.version, c.module_version)):
            self.totals[change.kind] += 1
            self.items.append(change)
            if len(self.named[change.kind]) < NAMED_PER_KIND:
                self.named[change.kind].append(change)


class ChangeTracker:
    """Collects a sync's changes from inside its transaction (see the module docstring).
    `itemize_first_import`: list every row of a first import (a dry run); a sync records
    only that it was one, and skips the reads."""

    def __init__(
        self, conn: Connection, catalog_id: int, now: datetime, *, itemize_first_import: bool
    ) -> None:
        self.conn = conn
        self.params = {"c": catalog_id, "now": now}
        self.itemize_first_import = itemize_first_import
        self.changes = Changes()
        self._updated: list[Change] = []
        self._removed: dict[str, list[Change]] = {}

    def _rows(self, sql: str) -> list[Any]:
        query = text(sql)
        if ":now" in sql:  # the type the diff wrote `created` with: equal on both backends
            query = query.bindparams(bindparam("now", type_=DateTime(timezone=True)))
        return list(self.conn.execute(query, self.params))

    def before_package_updates(self) -> None:
        for row in self._rows(_PACKAGES_UPDATED):
            fields = _changed_fields(row, _PACKAGE_FIELDS)
            self._updated.append(Change("package_updated", row.name, fields=fields))

    def before_version_updates(self) -> None:
        for row in self._rows(_VERSIONS_UPDATED):
            fields = _changed_fields(row, _VERSION_FIELDS)
            key = (row.name, row.version, row.module_version)
            self._updated.append(Change("version_updated", *key, fields=fields))

    def before_deletes(self, *, rows: bool = True) -> None:
        """`rows` False: no package is in play (versions_hash.fill_in_play), so no version
        or target is deleted."""
        self._removed = {
            "package": [Change("package_removed", r.name) for r in self._rows(_PACKAGES_REMOVED)],
            "version": [
                Change("version_removed", r.name, r.version, r.module_version)
                for r in (self._rows(_VERSIONS_REMOVED) if rows else [])
            ],
            "target": _per_version("target_removed", self._rows(_TARGETS_REMOVED) if rows else []),
        }

    def finish(self, *, first_import: bool) -> Changes:
        """The changes, once the diff has written everything (called before the commit)."""
        changes = self.changes
        changes.first_import = first_import
        if first_import and not self.itemize_first_import:
            return changes
        updated = {kind: [c for c in self._updated if c.kind == kind] for kind in CHANGE_KINDS}
        changes.add([Change("package_added", r.name) for r in self._rows(_PACKAGES_ADDED)])
        changes.add(self._removed.get("package", []))
        changes.add(updated["package_updated"])
        changes.add(
            [
                Change("version_added", r.name, r.version, r.module_version)
                for r in self._rows(_VERSIONS_ADDED)
            ]
        )
        changes.add(self._removed.get("version", []))
        changes.add(updated["version_updated"])
        changes.add(_per_version("target_added", self._rows(_TARGETS_ADDED)))
        changes.add(self._removed.get("target", []))
        return changes


def _per_version(kind: str, rows: list[Any]) -> list[Change]:
    """One change per version from rows of (name, version, module_version, target_name)."""
    names: dict[VersionKey, list[str]] = {}
    for row in rows:
        names.setdefault((row.name, row.version, row.module_version), []).append(row.target_name)
    return [
        Change(kind, *key, targets=len(found), names=tuple(sorted(set(found))[:NAMES_PER_CHANGE]))
        for key, found in names.items()
    ]


def _changed_fields(row: Any, fields: Iterable[tuple[str, bool]]) -> tuple[str, ...]:
    mapping = row._mapping
    return tuple(
        name
        for name, is_json in fields
        if _value(mapping[name], is_json) != _value(mapping[f"new_{name}"], is_json)
    )


def _value(value: Any, is_json: bool) -> Any:
    """A value as comparable across the table and staging: staged JSON is text (and all JSON
    is on SQLite), dates are text on SQLite, booleans integers."""
    if is_json and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, bool):
        return int(value)
    if value is not None and not isinstance(value, int | float | str | list | dict):
        return str(value)  # a date
    return value
