"""The set-based diff of staging against the catalog's rows: only changed rows are written,
and deletes run bottom-up so that every deleted row is counted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, DateTime, bindparam, text

from syncd.domain import KindStats, SyncStats
from syncd.readmodel import refresh_read_model, with_parents
from syncd.sync.local_rows import after_diff, before_diff
from syncd.sync.plan_changes import ChangeTracker
from syncd.sync.records import _Staged
from syncd.sync.shrink import GUARD_OFF, ShrinkRefusedError, ShrinkVerdict, shrink_verdict
from syncd.sync.staging import _SQLITE_STAGE_INDEXES, STAGE_PACKAGE_INDEXES
from syncd.sync.touched import packages_of_versions, written_packages
from syncd.sync.versions_hash import (
    check_skipped,
    fill_in_play,
    in_play_target,
    in_play_version,
    store_hashes,
)

# ---------------------------------------------------------------------------------------
# Diff: set-based statements, the same text on both backends (UPDATE ... FROM needs
# SQLite >= 3.33). `{given_uuid}` is a new row's uuid: the record's own, else a random one
# made the way each backend can; `{jsonb}` the cast of staged JSON text (none on SQLite,
# where JSON is text anyway).
# ---------------------------------------------------------------------------------------
_PG_UUID = "gen_random_uuid()"
# A version-4 uuid as the 32 lowercase hex digits SQLAlchemy's Uuid type stores on SQLite.
_SQLITE_UUID = (
    "lower(hex(randomblob(6)) || '4' || substr(hex(randomblob(2)), 2) "
    "|| substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) "
    "|| hex(randomblob(6)))"
)

_EXTENSION_COUNTS = """
UPDATE stage_package SET extension_count = x.n
FROM (SELECT parent_name, count(*) AS n FROM stage_parent GROUP BY parent_name) AS x
WHERE x.parent_name = stage_package.name
"""
# A row's own fields are written only when upstream changed them (its content hash): an edit
# made through the API to an upstream row lasts until then. Counts and positions, which move
# when other rows change, are written on their own (_UPDATE_PACKAGE_COUNTS, _UPDATE_ORDER).
_UPDATE_PACKAGES = """
UPDATE package SET description = s.description, homepage = s.homepage,
    categories = s.categories{jsonb}, licenses = s.licenses{jsonb},
    maintainers = s.maintainers{jsonb}, metadata = s.metadata{jsonb},
    is_extension = s.is_extension, content_hash = s.content_hash,
    versions_hash = s.versions_hash, version_count = s.version_count,
    extension_count = s.extension_count, modified = :now
FROM stage_package AS s
WHERE package.catalog_id = :c AND package.name = s.name
  AND package.content_hash <> s.content_hash
"""
_UPDATE_PACKAGE_COUNTS = """
UPDATE package SET version_count = s.version_count, extension_count = s.extension_count,
    modified = :now
FROM stage_package AS s
WHERE package.catalog_id = :c AND package.name = s.name
  AND (package.version_count <> s.version_count OR package.extension_count <> s.extension_count)
"""
_INSERT_PACKAGES = """
INSERT INTO package (uuid, created, modified, catalog_id, name, description, homepage,
    categories, licenses, maintainers, metadata, is_extension, content_hash, versions_hash,
    version_count, extension_count)
SELECT {given_uuid}, :now, :now, :c, s.name, s.description, s.homepage, s.categories{jsonb},
    s.licenses{jsonb}, s.maintainers{jsonb}, s.metadata{jsonb}, s.is_extension, s.content_hash,
    s.versions_hash, s.version_count, s.extension_count
FROM stage_package AS s
WHERE NOT EXISTS (SELECT 1 FROM package AS p WHERE p.catalog_id = :c AND p.name = s.name)
"""
_RESOLVE_VERSIONS = """
UPDATE stage_version SET package_id = p.id FROM package AS p
WHERE p.catalog_id = :c AND p.name = stage_version.package_name
"""
_UPDATE_VERSIONS = """
UPDATE version SET release_date = s.release_date, dependencies = s.dependencies{jsonb},
    metadata = s.metadata{jsonb}, sort_index = s.sort_index, content_hash = s.content_hash,
    modified = :now
FROM stage_version AS s
WHERE version.catalog_id = :c AND version.package_id = s.package_id
  AND version.version = s.version AND version.module_version = s.module_version
  AND version.content_hash <> s.content_hash
"""
_UPDATE_ORDER = """
UPDATE version SET sort_index = s.sort_index, modified = :now
FROM stage_version AS s
WHERE version.catalog_id = :c AND version.package_id = s.package_id
  AND version.version = s.version AND version.module_version = s.module_version
  AND version.sort_index <> s.sort_index
"""
_INSERT_VERSIONS = """
INSERT INTO version (uuid, created, modified, package_id, catalog_id, version, module_version,
    release_date, dependencies, metadata, sort_index, content_hash)
SELECT {given_uuid}, :now, :now, s.package_id, :c, s.version, s.module_version, s.release_date,
    s.dependencies{jsonb}, s.metadata{jsonb}, s.sort_index, s.content_hash
FROM stage_version AS s
WHERE NOT EXISTS (SELECT 1 FROM version AS v WHERE v.catalog_id = :c
    AND v.package_id = s.package_id AND v.version = s.version
    AND v.module_version = s.module_version)
"""
# Each staged version's row (inserted above if new), then each staged target's version from
# its staged version: joins of staging with a unique key, and of staging with staging, that
# stay linear whatever the plan. (Joining package x version filtered by catalog instead was
# planned, without statistics, as a bitmap of the catalog's versions per staged target: 4.3 s
# for a 1% Spack refresh.)
_RESOLVE_VERSION_IDS = """
UPDATE stage_version SET version_id = v.id FROM version AS v
WHERE v.package_id = stage_version.package_id AND v.version = stage_version.version
  AND v.module_version = stage_version.module_version
"""
_RESOLVE_TARGETS = """
UPDATE stage_target SET version_id = sv.version_id FROM stage_version AS sv
WHERE sv.package_name = stage_target.package_name AND sv.version = stage_target.version
  AND sv.module_version = stage_target.module_version
"""
# SQLite's planner drove a package x version join from the package side (seconds per thousand
# targets); one lookup per staged row through the unique indexes is what it does well.
_RESOLVE_TARGETS_SQLITE = """
UPDATE stage_target SET version_id = (SELECT v.id FROM package AS p
    JOIN version AS v ON v.package_id = p.id
    WHERE p.catalog_id = :c AND p.name = stage_target.package_name
      AND v.version = stage_target.version AND v.module_version = stage_target.module_version)
"""
_UPDATE_TARGETS = """
UPDATE target SET location = s.location, metadata = s.metadata{jsonb},
    gpu_architectures = s.gpu_architectures{jsonb}, content_hash = s.content_hash,
    modified = :now
FROM stage_target AS s
WHERE target.catalog_id = :c AND target.version_id = s.version_id
  AND target.target_type = s.target_type AND target.target_name = s.target_name
  AND target.target_subtype = s.target_subtype AND target.content_hash <> s.content_hash
"""
_INSERT_TARGETS = """
INSERT INTO target (uuid, created, modified, version_id, catalog_id, target_type, target_name,
    target_subtype, location, metadata, gpu_architectures, content_hash)
SELECT {given_uuid}, :now, :now, s.version_id, :c, s.target_type, s.target_name, s.target_subtype,
    s.location, s.metadata{jsonb}, s.gpu_architectures{jsonb}, s.content_hash
FROM stage_target AS s
WHERE NOT EXISTS (SELECT 1 FROM target AS t WHERE t.catalog_id = :c
    AND t.version_id = s.version_id AND t.target_type = s.target_type
    AND t.target_name = s.target_name AND t.target_subtype = s.target_subtype)
"""
# Only parents the snapshot holds: a vanished parent's row is still there until the deletes
# at the end, and a link to it would be counted as kept, then removed by the cascade.
_RESOLVE_PARENTS = """
UPDATE stage_parent SET package_id = c.id, parent_id = p.id
FROM package AS c, package AS p, stage_package AS s
WHERE c.catalog_id = :c AND c.name = stage_parent.name
  AND p.catalog_id = :c AND p.name = stage_parent.parent_name AND s.name = p.name
"""
_RESOLVE_PARENTS_SQLITE = """
UPDATE stage_parent SET
    package_id = (SELECT id FROM package WHERE catalog_id = :c AND name = stage_parent.name),
    parent_id = (SELECT id FROM package WHERE catalog_id = :c AND name = stage_parent.parent_name
        AND EXISTS (SELECT 1 FROM stage_package AS s WHERE s.name = stage_parent.parent_name))
"""
_COUNT_RESOLVED_PARENTS = "SELECT count(*) FROM stage_parent WHERE parent_id IS NOT NULL"
_INSERT_PARENTS = """
INSERT INTO package_parent (package_id, parent_id, catalog_id)
SELECT s.package_id, s.parent_id, :c FROM stage_parent AS s
WHERE s.parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM package_parent AS l
    WHERE l.package_id = s.package_id AND l.parent_id = s.parent_id)
RETURNING parent_id
"""
# The statements RETURNING ids name the packages whose list fragment they change (touched.py).
# Deletes run bottom-up so that each kind is counted before a cascade could hide it.
# Local rows (made through the API) are never deleted by a sync (syncd/sync/local_rows.py),
# nor are the versions and targets of packages whose versions hash was unchanged, which were
# not staged (versions_hash.py).
_DELETE_TARGETS = f"""
DELETE FROM target WHERE catalog_id = :c AND NOT is_local AND {in_play_target("target")}
  AND NOT EXISTS (SELECT 1 FROM stage_target AS s
    WHERE s.version_id = target.version_id AND s.target_type = target.target_type
      AND s.target_name = target.target_name AND s.target_subtype = target.target_subtype)
RETURNING version_id
"""
_DELETE_VERSIONS = f"""
DELETE FROM version WHERE catalog_id = :c AND NOT is_local AND {in_play_version("version")}
  AND NOT EXISTS (SELECT 1 FROM stage_version AS s
    WHERE s.package_id = version.package_id AND s.version = version.version
      AND s.module_version = version.module_version)
RETURNING package_id
"""
_DELETE_PARENTS = """
DELETE FROM package_parent WHERE catalog_id = :c AND NOT EXISTS (
    SELECT 1 FROM stage_parent AS s
    WHERE s.package_id = package_parent.package_id AND s.parent_id = package_parent.parent_id)
RETURNING parent_id, package_id
"""
_DELETE_PACKAGES = """
DELETE FROM package WHERE catalog_id = :c AND NOT is_local
  AND NOT EXISTS (SELECT 1 FROM stage_package AS s WHERE s.name = package.name)
"""


# Keep missing (a partial mirror): nothing is deleted, so a package's stored counts must go on
# counting its kept versions and extensions, or every refresh would "update" them.
_KEPT_VERSION_COUNTS = """
UPDATE stage_package SET version_count = version_count + (SELECT count(*)
    FROM version AS v JOIN package AS p ON p.id = v.package_id
    WHERE p.catalog_id = :c AND p.name = stage_package.name AND NOT EXISTS (
        SELECT 1 FROM stage_version AS s WHERE s.package_name = p.name
          AND s.version = v.version AND s.module_version = v.module_version))
"""
_KEPT_EXTENSION_COUNTS = """
UPDATE stage_package SET extension_count = extension_count + (SELECT count(*)
    FROM package_parent AS l JOIN package AS c ON c.id = l.package_id
    JOIN package AS p ON p.id = l.parent_id
    WHERE l.catalog_id = :c AND p.name = stage_package.name AND NOT EXISTS (
        SELECT 1 FROM stage_parent AS s WHERE s.name = c.name AND s.parent_name = p.name))
"""
_COUNT_ROWS = "SELECT count(*) FROM {table} WHERE catalog_id = :c"


def _is_empty(conn: Connection, catalog_id: int) -> bool:
    """True if the catalog has no package rows (and so no rows at all): a first import.
    Asked under the catalog's lock, so no other sync can fill it meanwhile."""
    return not conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM package WHERE catalog_id = :c)"), {"c": catalog_id}
    ).scalar_one()


class _Differ:
    def __init__(
        self,
        conn: Connection,
        dialect: str,
        catalog_id: int,
        now: datetime,
        *,
        keep_missing: bool = False,
        max_shrink_fraction: float = GUARD_OFF,
        allow_shrink: bool = False,
        changes: ChangeTracker | None = None,
    ) -> None:
        self.conn = conn
        # The sync history's (and a dry run's) changes, read around the writes below.
        self.changes = changes
        # keep_missing: add and update, delete nothing (a site whose mirror is partial).
        self.keep_missing = keep_missing
        # The shrink guard (shrink.py); allow_shrink: an operator accepted this one, or a
        # dry run, which reports the verdict instead of refusing.
        self.max_shrink_fraction = max_shrink_fraction
        self.allow_shrink = allow_shrink
        self.shrink = ShrinkVerdict(0, 0, max_shrink_fraction)
        self.dialect = dialect
        self.catalog_id = catalog_id
        self.now = now
        self.params = {"c": catalog_id, "now": now}
        self.pg = pg = dialect == "postgresql"
        new_uuid = _PG_UUID if pg else _SQLITE_UUID
        # A uuid the record carries (syncd import-file --keep-uuids), else a random one.
        given = f"COALESCE(s.new_uuid{'::uuid' if pg else ''}, {new_uuid})"
        self.fmt = {"uuid": new_uuid, "given_uuid": given, "jsonb": "::jsonb" if pg else ""}

    def run(self, sql: str) -> int:
        statement = text(sql.format(**self.fmt))
        if ":now" in sql:
            statement = statement.bindparams(bindparam("now", type_=DateTime(timezone=True)))
        return int(self.conn.execute(statement, self.params).rowcount)

    def run_returning(self, sql: str) -> list[int]:
        """Run a statement RETURNING one id per row written (so its length is the count)."""
        return [int(row[0]) for row in self.conn.execute(text(sql), self.params)]

    def prepare(self) -> None:
        # PostgreSQL needs nothing here: without statistics on the temporary tables the
        # planner estimates their rows from their size and already picks hash joins, and an
        # ANALYZE (which samples every jsonb column) costs more than it saves.
        temp = "temp." if self.dialect == "sqlite" else ""
        for ddl in STAGE_PACKAGE_INDEXES:
            self.conn.exec_driver_sql(ddl.format(temp=temp))
        if self.dialect == "sqlite":
            for ddl in _SQLITE_STAGE_INDEXES:
                self.conn.exec_driver_sql(ddl)

    def apply(self, staged: _Staged) -> tuple[SyncStats, int]:
        """Diff staging into the catalog; returns the stats and the unknown parent count."""
        stats = SyncStats()
        # A first import has nothing to update or delete: skip those statements.
        existing = not _is_empty(self.conn, self.catalog_id)
        self.prepare()
        if existing:
            check_skipped(self.conn, self.catalog_id)
        local = existing and before_diff(self.conn, self.catalog_id, staged)
        if existing:  # before the diff's writes (a refusal rolls the transaction back)
            self.shrink = shrink_verdict(
                self.conn, self.catalog_id, self.max_shrink_fraction, keep_missing=self.keep_missing
            )
            if self.shrink.refused and not self.allow_shrink:
                raise ShrinkRefusedError(self.shrink.reason())
        self.run(_EXTENSION_COUNTS)
        keeping = existing and self.keep_missing
        if keeping:
            self.run(_KEPT_VERSION_COUNTS)
            self.run(_KEPT_EXTENSION_COUNTS)
        if existing and self.changes:
            self.changes.before_package_updates()
        if existing:
            stats.packages.updated = self.run(_UPDATE_PACKAGES)
            stats.packages.updated += self.run(_UPDATE_PACKAGE_COUNTS)
        stats.packages.created = self.run(_INSERT_PACKAGES)
        # Empty staging (every package skipped): its statements would still read the
        # catalog's rows for nothing (PostgreSQL plans an empty temporary table as ten
        # pages' worth).
        if staged.version_rows:
            self.run(_RESOLVE_VERSIONS)
            if existing and self.changes:
                self.changes.before_version_updates()
            if existing:
                stats.versions.updated = self.run(_UPDATE_VERSIONS)
                stats.versions.updated += self.run(_UPDATE_ORDER)
            stats.versions.created = self.run(_INSERT_VERSIONS)
        if staged.target_rows:
            if self.pg:
                self.run(_RESOLVE_VERSION_IDS)
                self.run(_RESOLVE_TARGETS)
            else:
                self.run(_RESOLVE_TARGETS_SQLITE)
            if existing:
                stats.targets.updated = self.run(_UPDATE_TARGETS)
            stats.targets.created = self.run(_INSERT_TARGETS)
        self.run(_RESOLVE_PARENTS if self.pg else _RESOLVE_PARENTS_SQLITE)
        resolved = int(self.conn.exec_driver_sql(_COUNT_RESOLVED_PARENTS).scalar_one())
        linked = self.run_returning(_INSERT_PARENTS)
        stats.parent_links.created = len(linked)
        touched = set(linked)
        if existing and not self.keep_missing:
            # None in play: every package staged was skipped, none vanished.
            in_play = fill_in_play(self.conn, self.catalog_id) > 0
            if self.changes:
                self.changes.before_deletes(rows=in_play)
            of_versions = []
            if in_play:
                of_targets = self.run_returning(_DELETE_TARGETS)
                stats.targets.deleted = len(of_targets)
                touched |= packages_of_versions(self.conn, of_targets)
                of_versions = self.run_returning(_DELETE_VERSIONS)
                stats.versions.deleted = len(of_versions)
            # Both ends of a link that goes: the parent's fragment names its extensions, the
            # extension's item its parents (and with_parents can no longer follow the link).
            of_links = list(self.conn.execute(text(_DELETE_PARENTS), self.params))
            stats.parent_links.deleted = len(of_links)
            touched |= {*of_versions, *(int(end) for link in of_links for end in link)}
            stats.packages.deleted = self.run(_DELETE_PACKAGES)
        store_hashes(self.conn, self.catalog_id, has_local_rows=local)
        staged.parent_links = resolved
        _set_unchanged(stats.packages, staged.packages)
        _set_unchanged(stats.versions, staged.versions)
        _set_unchanged(stats.targets, staged.targets)
        _set_unchanged(stats.parent_links, resolved)
        if local:  # after the stats: staged counts become the catalog's totals
            after_diff(self.conn, self.catalog_id, staged)
        if keeping:  # the catalog's counts are of the rows it holds, kept ones included
            staged.packages = self._count("package")
            staged.versions = self._count("version")
            staged.targets = self._count("target")
        if self.changes:
            self.changes.finish(first_import=not existing)
        self._render(existing, touched)
        return stats, self._count_parent_rows() - resolved

    def _render(self, existing: bool, touched: set[int]) -> None:
        """The read model (list fragments, filter values, search text) of exactly the packages
        this diff changed, in its transaction (a first import: all of them, a catalog at a
        time)."""
        if not existing:
            refresh_read_model(self.conn, self.catalog_id, None, fresh=True)
            return
        touched |= written_packages(self.conn, self.catalog_id, self.now)
        refresh_read_model(self.conn, self.catalog_id, with_parents(self.conn, touched))

    def _count(self, table: str) -> int:
        return int(
            self.conn.execute(text(_COUNT_ROWS.format(table=table)), self.params).scalar_one()
        )

    def _count_parent_rows(self) -> int:
        return int(self.conn.exec_driver_sql("SELECT count(*) FROM stage_parent").scalar_one())


def _set_unchanged(kind: KindStats, staged: int) -> None:
    kind.unchanged = staged - kind.created - kind.updated
