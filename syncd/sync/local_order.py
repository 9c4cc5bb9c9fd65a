"""Where versions made by hand sort among their package's versions (`version.sort_index`,
0 = newest, no gaps, no ties: the default order and `o=version` read it).

Upstream versions keep the order the adapter gave them; a local version goes right after
the last upstream version newer than it, by syncd's version semantics (syncd/versioning.py:
version, then module version, as the EESSI adapter orders builds); local versions next to
each other go newest first. A package holding local versions only is numbered newest first.

Both writers number the same way, so neither undoes the other: a hand write renumbers the
stored rows of the packages it touched (`renumber_versions`); a sync renumbers its staged
upstream versions of every package holding local versions, and those local versions, before
its diff compares positions (`renumber_staged`), and renumbers local packages after it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select, text, update

from syncd.db.tables import Version
from syncd.versioning import VersionKey, version_key


@dataclass(frozen=True)
class Sibling:
    """One version of a package: `ref` identifies it to the caller (an id, a staged key)."""

    ref: Any
    version: str
    module_version: str
    is_local: bool


def _newness(sibling: Sibling) -> tuple[tuple[VersionKey, str], tuple[VersionKey, str], str]:
    return (
        version_key(sibling.version),
        version_key(sibling.module_version),
        sibling.module_version,
    )


def merged_order(upstream: Sequence[Sibling], local: Iterable[Sibling]) -> list[Sibling]:
    """`upstream` (in its own order, newest first) with the `local` versions put in."""
    slots: dict[int, list[Sibling]] = defaultdict(list)
    for sibling in local:
        mine = _newness(sibling)
        newer = 0
        while newer < len(upstream) and _newness(upstream[newer]) > mine:
            newer += 1
        slots[newer].append(sibling)
    ordered: list[Sibling] = []
    for index in range(len(upstream) + 1):
        group = slots.get(index, [])
        # Newest first; the same version twice (other modules): the earlier made first.
        group.sort(key=lambda s: (_newness(s), -_tiebreak(s)), reverse=True)
        ordered.extend(group)
        if index < len(upstream):
            ordered.append(upstream[index])
    return ordered


def _tiebreak(sibling: Sibling) -> int:
    return sibling.ref if isinstance(sibling.ref, int) else 0


_VERSIONS = cast(Table, Version.__table__)


def renumber_versions(conn: Connection, package_ids: Iterable[int]) -> None:
    """Number the stored versions of these packages (upstream ones keep their order)."""
    ids = sorted(set(package_ids))
    if not ids:
        return
    t = _VERSIONS.c
    rows = conn.execute(
        select(t.id, t.package_id, t.version, t.module_version, t.sort_index, t.is_local)
        .where(t.package_id.in_(ids))
        .order_by(t.package_id, t.sort_index, t.id)
    ).all()
    by_package: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_package[row.package_id].append(row)
    changed: list[dict[str, int]] = []
    for versions in by_package.values():
        current = {row.id: row.sort_index for row in versions}
        siblings = [Sibling(r.id, r.version, r.module_version, bool(r.is_local)) for r in versions]
        upstream = [s for s in siblings if not s.is_local]
        for position, sibling in enumerate(
            merged_order(upstream, [s for s in siblings if s.is_local])
        ):
            if current[sibling.ref] != position:
                changed.append({"vid": sibling.ref, "position": position})
    if changed:
        # Not `modified`: a version's place among its siblings is not an edit of it.
        conn.execute(
            update(_VERSIONS)
            .where(t.id == bindparam("vid"))
            .values(sort_index=bindparam("position"), modified=t.modified),
            changed,
        )


_HOLDERS = """
SELECT p.id, p.name FROM package AS p
WHERE p.catalog_id = :c AND NOT p.is_local
  AND EXISTS (SELECT 1 FROM version AS v WHERE v.package_id = p.id AND v.is_local)
  AND EXISTS (SELECT 1 FROM stage_package AS s WHERE s.name = p.name)
"""
_STAGED = """
SELECT version, module_version, sort_index FROM stage_version WHERE package_name = :name
ORDER BY sort_index
"""
_LOCAL = "SELECT id, version, module_version FROM version WHERE package_id = :p AND is_local"
_SET_STAGED = """
UPDATE stage_version SET sort_index = :position
WHERE package_name = :name AND version = :version AND module_version = :module_version
"""
_SET_LOCAL = "UPDATE version SET sort_index = :position WHERE id = :vid"


def renumber_staged(conn: Connection, catalog_id: int, sqlite: bool) -> None:
    """Before a diff: number the staged upstream versions of each upstream package that holds
    local versions together with those, as `renumber_versions` numbers the stored ones."""
    holders = conn.execute(text(_HOLDERS), {"c": catalog_id}).all()
    if not holders:
        return
    prefix = "temp." if sqlite else ""
    conn.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS {prefix}ix_stage_version_name "
        "ON stage_version (package_name, version, module_version)"
    )
    staged_changes: list[dict[str, Any]] = []
    local_changes: list[dict[str, Any]] = []
    for package_id, name in holders:
        staged = conn.execute(text(_STAGED), {"name": name}).all()
        upstream = [Sibling((v, m), v, m, False) for v, m, _ in staged]
        was = {(v, m): index for v, m, index in staged}
        local = [
            Sibling(int(vid), v, m, True)
            for vid, v, m in conn.execute(text(_LOCAL), {"p": package_id})
        ]
        for position, sibling in enumerate(merged_order(upstream, local)):
            if sibling.is_local:
                local_changes.append({"vid": sibling.ref, "position": position})
            elif was[sibling.ref] != position:
                version, module_version = sibling.ref
                staged_changes.append(
                    {"name": name, "version": version, "module_version": module_version}
                    | {"position": position}
                )
    if staged_changes:
        conn.execute(text(_SET_STAGED), staged_changes)
    if local_changes:
        conn.execute(text(_SET_LOCAL), local_changes)
