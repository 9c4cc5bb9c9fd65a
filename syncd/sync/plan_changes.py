"""What a sync changed, read inside its own transaction: the rows before it (ids and names),
and after it the ids that remain, the ids that are new and the rows it rewrote (`modified`
= the sync's time). Only a dry run asks (syncd/sync/planning.py), which then rolls back.

The changes carry the kinds of the sync history (issue 15): package_added, package_removed,
package_updated, version_added, version_removed, version_updated, and target_added /
target_removed summarised per version (a count of targets).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, bindparam, text

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
# Changes named per kind; the rest of a kind is only counted (a plan of a full Spack
# refresh must stay small).
NAMED_PER_KIND = 1000

_PACKAGES = "SELECT id, name FROM package WHERE catalog_id = :c"
_VERSIONS = """
SELECT v.id, p.name, v.version, v.module_version FROM version AS v
JOIN package AS p ON p.id = v.package_id WHERE v.catalog_id = :c
"""
_TARGETS = "SELECT id, version_id FROM target WHERE catalog_id = :c"
_MODIFIED = "SELECT id FROM {table} WHERE catalog_id = :c AND modified = :now"

VersionKey = tuple[str, str, str]  # package name, version, module version


@dataclass(frozen=True)
class Change:
    kind: str
    package: str
    version: str = ""
    module_version: str = ""
    targets: int = 0  # target_added / target_removed: how many of the version's targets

    def as_dict(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {"change": self.kind, "package_name": self.package}
        if self.kind.startswith(("version", "target")):
            out["version"] = self.version
            out["module_version"] = self.module_version
        if self.kind.startswith("target"):
            out["targets"] = self.targets
        return out


@dataclass
class CatalogRows:
    """A catalog's rows by id: package names, version keys, each target's version."""

    packages: dict[int, str] = field(default_factory=dict)
    versions: dict[int, VersionKey] = field(default_factory=dict)
    targets: dict[int, int] = field(default_factory=dict)


@dataclass
class Changes:
    """Per kind: the total, and the first NAMED_PER_KIND changes (sorted by name)."""

    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGE_KINDS, 0))
    named: dict[str, list[Change]] = field(default_factory=lambda: {k: [] for k in CHANGE_KINDS})

    def add(self, changes: list[Change]) -> None:
        for change in sorted(changes, key=lambda c: (c.package, c.version, c.module_version)):
            self.totals[change.kind] += 1
            if len(self.named[change.kind]) < NAMED_PER_KIND:
                self.named[change.kind].append(change)


def read_rows(conn: Connection, catalog_id: int) -> CatalogRows:
    params = {"c": catalog_id}
    rows = CatalogRows()
    rows.packages = {r.id: r.name for r in conn.execute(text(_PACKAGES), params)}
    rows.versions = {
        r.id: (r.name, r.version, r.module_version) for r in conn.execute(text(_VERSIONS), params)
    }
    rows.targets = {r.id: r.version_id for r in conn.execute(text(_TARGETS), params)}
    return rows


def _modified(conn: Connection, table: str, catalog_id: int, now: datetime) -> set[int]:
    # The same typed parameter the diff wrote `modified` with, so both backends compare equal.
    query = text(_MODIFIED.format(table=table)).bindparams(
        bindparam("now", type_=DateTime(timezone=True))
    )
    return {row.id for row in conn.execute(query, {"c": catalog_id, "now": now})}


def compare(conn: Connection, catalog_id: int, before: CatalogRows, now: datetime) -> Changes:
    """The changes from `before` to the rows now in the transaction (the sync ran at `now`)."""
    after = read_rows(conn, catalog_id)
    changes = Changes()
    package_modified = _modified(conn, "package", catalog_id, now)
    version_modified = _modified(conn, "version", catalog_id, now)
    _kind_changes(
        changes, "package", before.packages, after.packages, package_modified, _package_key
    )
    _kind_changes(
        changes, "version", before.versions, after.versions, version_modified, _version_key
    )
    versions = {**before.versions, **after.versions}
    for kind, ids, rows in (
        ("target_added", after.targets.keys() - before.targets.keys(), after.targets),
        ("target_removed", before.targets.keys() - after.targets.keys(), before.targets),
    ):
        per_version: dict[VersionKey, int] = {}
        for target_id in ids:
            key = versions[rows[target_id]]
            per_version[key] = per_version.get(key, 0) + 1
        changes.add([Change(kind, *key, targets=n) for key, n in per_version.items()])
    return changes


def _package_key(name: str) -> VersionKey:
    return (name, "", "")


def _version_key(key: VersionKey) -> VersionKey:
    return key


def _kind_changes(
    changes: Changes,
    kind: str,
    before: Mapping[int, Any],
    after: Mapping[int, Any],
    modified: set[int],
    key_of: Callable[[Any], VersionKey],
) -> None:
    def change(what: str, value: Any) -> Change:
        return Change(f"{kind}_{what}", *key_of(value))

    changes.add([change("added", after[i]) for i in after.keys() - before.keys()])
    changes.add([change("removed", before[i]) for i in before.keys() - after.keys()])
    changes.add([change("updated", after[i]) for i in modified & before.keys() & after.keys()])
