"""Write one catalog snapshot into the database: the only writer of catalog contents.

How a sync runs, in one transaction under the catalog's lock (syncd/db/locks.py):
1. Stream the snapshot's packages once into temporary staging tables (PostgreSQL: COPY in
   batches; SQLite: executemany), computing each row's content hash on the way. Only the
   current batch and the set of package names seen are held in memory.
2. Diff staging against the catalog's rows with set-based statements, top-down for writes
   (packages, versions, targets, parent links: UPDATE where the hash differs, INSERT what is
   missing) and bottom-up for deletes (so every deleted row is counted, none vanishes
   silently through ON DELETE CASCADE). Unchanged rows are never written, so their uuid,
   `created` and `modified` stay as they were.
3. Update the catalog row (description, source_url, metadata, counts, validators, hash)
   only if one of them changed.
A first import on PostgreSQL (the catalog has no rows yet: nothing to diff) skips 1. and 2.
and COPYs the rows straight into the tables instead (_direct_import): the same rows, hashes
and stats, in less time (bench/README.md: 2.8-3.6 s instead of 3.9 s for Spack).
Readers see the old catalog or the new one: nothing is visible before the commit.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from hashlib import blake2b
from typing import Any, cast

import psycopg
import structlog
from psycopg._copy_base import format_row_text  # the encoder copy.write_row uses
from psycopg.adapt import Transformer
from sqlalchemy import Connection, DateTime, Engine, Table, bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from syncd import cache_events, metrics
from syncd.db.locks import catalog_transaction
from syncd.db.tables import Catalog, Package, Target, Version
from syncd.domain import (
    CatalogSnapshot,
    KindStats,
    PackageRecord,
    SyncStats,
    TargetRecord,
    VersionRecord,
)
from syncd.errors import PermanentError, SyncdError, TransientError, UnknownCatalogError

# Rows buffered in Python before they are sent to staging: bounds memory, keeps statements few.
BATCH_ROWS = 2000

_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode


def _json(value: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces); empty containers skip the encoder,
    which matters at ~100k rows with mostly empty lists."""
    if not value:
        if isinstance(value, list):
            return "[]"
        if isinstance(value, dict):
            return "{}"
    return _encode(value)


def _digest(own: tuple[str | bool | int | None, ...], *json_parts: str) -> str:
    """Stable hash of a row's own fields: the repr of its scalars (str/None/bool/int have a
    canonical repr) and its JSON texts. Neither contains a raw NUL, so joining is unambiguous."""
    text_ = "\x00".join((repr(own), *json_parts))
    return blake2b(text_.encode(), digest_size=16).hexdigest()


# ---------------------------------------------------------------------------------------
# Staging tables: (column, PostgreSQL type). "json" columns are staged as text and cast to
# jsonb only for rows that are inserted or updated: an unchanged row's JSON is never parsed.
# SQLite gets TEXT/INTEGER (JSON must be TEXT there: an unknown type name would get
# NUMERIC affinity and turn "1" into 1).
# ---------------------------------------------------------------------------------------
_STAGE_PACKAGE = (
    ("name", "text"),
    ("description", "text"),
    ("homepage", "text"),
    ("categories", "json"),
    ("licenses", "json"),
    ("maintainers", "json"),
    ("is_extension", "boolean"),
    ("content_hash", "text"),
    ("version_count", "integer"),
)
_STAGE_PARENT = (("name", "text"), ("parent_name", "text"))
_STAGE_VERSION = (
    ("package_name", "text"),
    ("version", "text"),
    ("module_version", "text"),
    ("release_date", "date"),
    ("dependencies", "json"),
    ("metadata", "json"),
    ("sort_index", "integer"),
    ("content_hash", "text"),
)
_STAGE_TARGET = (
    ("package_name", "text"),
    ("version", "text"),
    ("module_version", "text"),
    ("target_type", "text"),
    ("target_name", "text"),
    ("target_subtype", "text"),
    ("location", "text"),
    ("metadata", "json"),
    ("gpu_architectures", "json"),
    ("content_hash", "text"),
)
# Columns filled by the diff after loading (ids resolved against the real tables).
_STAGE_EXTRA = {
    "stage_package": (("extension_count", "integer NOT NULL DEFAULT 0"),),
    "stage_parent": (("package_id", "bigint"), ("parent_id", "bigint")),
    "stage_version": (("package_id", "bigint"),),
    "stage_target": (("version_id", "bigint"),),
}
_STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "stage_package": _STAGE_PACKAGE,
    "stage_parent": _STAGE_PARENT,
    "stage_version": _STAGE_VERSION,
    "stage_target": _STAGE_TARGET,
}
# SQLite looks rows up one by one, so it needs indexes on the staging keys (PostgreSQL
# hash-joins instead and only needs statistics).
_SQLITE_STAGE_INDEXES = (
    "CREATE INDEX temp.ix_stage_package ON stage_package (name)",
    "CREATE INDEX temp.ix_stage_parent ON stage_parent (package_id, parent_id)",
    "CREATE INDEX temp.ix_stage_version ON stage_version (package_id, version, module_version)",
    "CREATE INDEX temp.ix_stage_target ON stage_target "
    "(version_id, target_type, target_name, target_subtype)",
)


def _sqlite_type(pg_type: str) -> str:
    base, _, rest = pg_type.partition(" ")
    kind = "INTEGER" if base in ("integer", "bigint", "boolean") else "TEXT"
    return f"{kind} {rest}".strip()


def _create_staging(conn: Connection, dialect: str) -> None:
    for table, columns in _STAGES.items():
        cols = [*columns, *_STAGE_EXTRA[table]]
        if dialect == "postgresql":
            body = ", ".join(f"{name} {typ.replace('json', 'text')}" for name, typ in cols)
            conn.exec_driver_sql(f"CREATE TEMP TABLE {table} ({body}) ON COMMIT DROP")
        else:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{table}")
            body = ", ".join(f"{name} {_sqlite_type(typ)}" for name, typ in cols)
            conn.exec_driver_sql(f"CREATE TEMP TABLE {table} ({body})")


def _drop_staging(conn: Connection, dialect: str) -> None:
    # PostgreSQL drops them at commit (ON COMMIT DROP); SQLite keeps temp tables per pooled
    # connection, so drop them here, inside the transaction (a rollback drops them too).
    if dialect == "sqlite":
        for table in _STAGES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{table}")


# ---------------------------------------------------------------------------------------
# Loading: records -> staging rows, batched
# ---------------------------------------------------------------------------------------
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

    def skip(self, why: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(why)


class _Loader:
    """Buffers staging rows and sends each full batch with one statement per table."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self._raw: Any = conn.connection.driver_connection
        self._send: Callable[[str, list[tuple[Any, ...]]], None] = (
            self._copy if dialect == "postgresql" else self._executemany
        )
        self._buffers: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _STAGES}
        self._pending = 0

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self._buffers[table].append(row)
        self._pending += 1
        if self._pending >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        for table, rows in self._buffers.items():
            if rows:
                self._send(table, rows)
                rows.clear()
        self._pending = 0

    def _copy(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        columns = ", ".join(name for name, _ in _STAGES[table])
        with (
            self._raw.cursor() as cur,
            cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def _executemany(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        columns = [name for name, _ in _STAGES[table]]
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        self._raw.executemany(sql, rows)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


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
            staged.duplicates += 1
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
            staged.duplicates += 1
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
                staged.duplicates += 1
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


def _stage_snapshot(conn: Connection, dialect: str, snapshot: CatalogSnapshot) -> _Staged:
    loader = _Loader(conn, dialect)
    staged = _Staged()
    for package in _kept_packages(snapshot, staged):
        name = package.name
        homepage, versions, parents = _keep(staged, package)
        for sort_index, (version, targets) in enumerate(versions):
            loader.add("stage_version", _version_row(name, version, sort_index))
            for target in targets:
                loader.add("stage_target", _target_row(name, version, target))
        loader.add("stage_package", _package_row(package, homepage, len(versions)))
        for parent in parents:
            loader.add("stage_parent", (name, parent))
    loader.flush()
    return staged


def _package_row(package: PackageRecord, homepage: str | None, version_count: int) -> tuple:
    categories = _json(package.categories)
    licenses = _json(package.licenses)
    maintainers = _json(package.maintainers)
    own = (package.name, package.description, homepage, package.is_extension)
    return (
        package.name,
        package.description,
        homepage,
        categories,
        licenses,
        maintainers,
        package.is_extension,
        _digest(own, categories, licenses, maintainers),
        version_count,
    )


def _version_row(package_name: str, version: VersionRecord, sort_index: int) -> tuple:
    released = _iso(version.release_date)
    dependencies = _json(version.dependencies)
    meta = _json(version.metadata)
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


def _target_row(package_name: str, version: VersionRecord, target: TargetRecord) -> tuple:
    meta = _json(target.metadata)
    gpus = _json(target.gpu_architectures)
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


# ---------------------------------------------------------------------------------------
# Diff: set-based statements, the same text on both backends (UPDATE ... FROM needs
# SQLite >= 3.33). `{uuid}` is how each backend makes a new row's uuid, `{jsonb}` the cast
# of staged JSON text (none on SQLite, where JSON is text anyway).
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
_UPDATE_PACKAGES = """
UPDATE package SET description = s.description, homepage = s.homepage,
    categories = s.categories{jsonb}, licenses = s.licenses{jsonb},
    maintainers = s.maintainers{jsonb},
    is_extension = s.is_extension, content_hash = s.content_hash,
    version_count = s.version_count, extension_count = s.extension_count, modified = :now
FROM stage_package AS s
WHERE package.catalog_id = :c AND package.name = s.name
  AND (package.content_hash <> s.content_hash OR package.version_count <> s.version_count
       OR package.extension_count <> s.extension_count)
"""
_INSERT_PACKAGES = """
INSERT INTO package (uuid, created, modified, catalog_id, name, description, homepage,
    categories, licenses, maintainers, is_extension, content_hash, version_count,
    extension_count)
SELECT {uuid}, :now, :now, :c, s.name, s.description, s.homepage, s.categories{jsonb},
    s.licenses{jsonb}, s.maintainers{jsonb}, s.is_extension, s.content_hash, s.version_count,
    s.extension_count
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
  AND (version.content_hash <> s.content_hash OR version.sort_index <> s.sort_index)
"""
_INSERT_VERSIONS = """
INSERT INTO version (uuid, created, modified, package_id, catalog_id, version, module_version,
    release_date, dependencies, metadata, sort_index, content_hash)
SELECT {uuid}, :now, :now, s.package_id, :c, s.version, s.module_version, s.release_date,
    s.dependencies{jsonb}, s.metadata{jsonb}, s.sort_index, s.content_hash
FROM stage_version AS s
WHERE NOT EXISTS (SELECT 1 FROM version AS v WHERE v.catalog_id = :c
    AND v.package_id = s.package_id AND v.version = s.version
    AND v.module_version = s.module_version)
"""
_RESOLVE_TARGETS = """
UPDATE stage_target SET version_id = v.id FROM package AS p, version AS v
WHERE p.catalog_id = :c AND p.name = stage_target.package_name
  AND v.catalog_id = :c AND v.package_id = p.id AND v.version = stage_target.version
  AND v.module_version = stage_target.module_version
"""
# SQLite's planner drives the join above from package x version (seconds per thousand
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
SELECT {uuid}, :now, :now, s.version_id, :c, s.target_type, s.target_name, s.target_subtype,
    s.location, s.metadata{jsonb}, s.gpu_architectures{jsonb}, s.content_hash
FROM stage_target AS s
WHERE NOT EXISTS (SELECT 1 FROM target AS t WHERE t.catalog_id = :c
    AND t.version_id = s.version_id AND t.target_type = s.target_type
    AND t.target_name = s.target_name AND t.target_subtype = s.target_subtype)
"""
_RESOLVE_PARENTS = """
UPDATE stage_parent SET package_id = c.id, parent_id = p.id FROM package AS c, package AS p
WHERE c.catalog_id = :c AND c.name = stage_parent.name
  AND p.catalog_id = :c AND p.name = stage_parent.parent_name
"""
_RESOLVE_PARENTS_SQLITE = """
UPDATE stage_parent SET
    package_id = (SELECT id FROM package WHERE catalog_id = :c AND name = stage_parent.name),
    parent_id = (SELECT id FROM package WHERE catalog_id = :c AND name = stage_parent.parent_name)
"""
_COUNT_RESOLVED_PARENTS = "SELECT count(*) FROM stage_parent WHERE parent_id IS NOT NULL"
_INSERT_PARENTS = """
INSERT INTO package_parent (package_id, parent_id, catalog_id)
SELECT s.package_id, s.parent_id, :c FROM stage_parent AS s
WHERE s.parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM package_parent AS l
    WHERE l.package_id = s.package_id AND l.parent_id = s.parent_id)
"""
# Deletes run bottom-up so that each kind is counted before a cascade could hide it.
_DELETE_TARGETS = """
DELETE FROM target WHERE catalog_id = :c AND NOT EXISTS (SELECT 1 FROM stage_target AS s
    WHERE s.version_id = target.version_id AND s.target_type = target.target_type
      AND s.target_name = target.target_name AND s.target_subtype = target.target_subtype)
"""
_DELETE_VERSIONS = """
DELETE FROM version WHERE catalog_id = :c AND NOT EXISTS (SELECT 1 FROM stage_version AS s
    WHERE s.package_id = version.package_id AND s.version = version.version
      AND s.module_version = version.module_version)
"""
_DELETE_PARENTS = """
DELETE FROM package_parent WHERE catalog_id = :c AND NOT EXISTS (
    SELECT 1 FROM stage_parent AS s
    WHERE s.package_id = package_parent.package_id AND s.parent_id = package_parent.parent_id)
"""
_DELETE_PACKAGES = """
DELETE FROM package WHERE catalog_id = :c
  AND NOT EXISTS (SELECT 1 FROM stage_package AS s WHERE s.name = package.name)
"""


def _is_empty(conn: Connection, catalog_id: int) -> bool:
    """True if the catalog has no package rows (and so no rows at all): a first import.
    Asked under the catalog's lock, so no other sync can fill it meanwhile."""
    return not conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM package WHERE catalog_id = :c)"), {"c": catalog_id}
    ).scalar_one()


class _Differ:
    def __init__(self, conn: Connection, dialect: str, catalog_id: int, now: datetime) -> None:
        self.conn = conn
        self.dialect = dialect
        self.catalog_id = catalog_id
        self.params = {"c": catalog_id, "now": now}
        self.pg = pg = dialect == "postgresql"
        self.fmt = {"uuid": _PG_UUID if pg else _SQLITE_UUID, "jsonb": "::jsonb" if pg else ""}

    def run(self, sql: str) -> int:
        statement = text(sql.format(**self.fmt))
        if ":now" in sql:
            statement = statement.bindparams(bindparam("now", type_=DateTime(timezone=True)))
        return int(self.conn.execute(statement, self.params).rowcount)

    def prepare(self) -> None:
        # PostgreSQL needs nothing here: without statistics on the temporary tables the
        # planner estimates their rows from their size and already picks hash joins, and an
        # ANALYZE (which samples every jsonb column) costs more than it saves.
        if self.dialect == "sqlite":
            for ddl in _SQLITE_STAGE_INDEXES:
                self.conn.exec_driver_sql(ddl)

    def apply(self, staged: _Staged) -> tuple[SyncStats, int]:
        """Diff staging into the catalog; returns the stats and the unknown parent count."""
        stats = SyncStats()
        # A first import has nothing to update or delete: skip those statements.
        existing = not _is_empty(self.conn, self.catalog_id)
        self.prepare()
        self.run(_EXTENSION_COUNTS)
        if existing:
            stats.packages.updated = self.run(_UPDATE_PACKAGES)
        stats.packages.created = self.run(_INSERT_PACKAGES)
        self.run(_RESOLVE_VERSIONS)
        if existing:
            stats.versions.updated = self.run(_UPDATE_VERSIONS)
        stats.versions.created = self.run(_INSERT_VERSIONS)
        self.run(_RESOLVE_TARGETS if self.pg else _RESOLVE_TARGETS_SQLITE)
        if existing:
            stats.targets.updated = self.run(_UPDATE_TARGETS)
        stats.targets.created = self.run(_INSERT_TARGETS)
        self.run(_RESOLVE_PARENTS if self.pg else _RESOLVE_PARENTS_SQLITE)
        resolved = int(self.conn.exec_driver_sql(_COUNT_RESOLVED_PARENTS).scalar_one())
        stats.parent_links.created = self.run(_INSERT_PARENTS)
        if existing:
            stats.targets.deleted = self.run(_DELETE_TARGETS)
            stats.versions.deleted = self.run(_DELETE_VERSIONS)
            stats.parent_links.deleted = self.run(_DELETE_PARENTS)
            stats.packages.deleted = self.run(_DELETE_PACKAGES)
        staged.parent_links = resolved
        _set_unchanged(stats.packages, staged.packages)
        _set_unchanged(stats.versions, staged.versions)
        _set_unchanged(stats.targets, staged.targets)
        _set_unchanged(stats.parent_links, resolved)
        return stats, self._count_parent_rows() - resolved

    def _count_parent_rows(self) -> int:
        return int(self.conn.exec_driver_sql("SELECT count(*) FROM stage_parent").scalar_one())


def _set_unchanged(kind: KindStats, staged: int) -> None:
    kind.unchanged = staged - kind.created - kind.updated


# ---------------------------------------------------------------------------------------
# First import on PostgreSQL: straight into the tables
#
# A catalog without package rows has nothing to diff against, so staging would only copy
# every row twice. Instead rows are COPYed into package/version/target as the stream is
# read, with ids taken from the tables' sequences (nextval hands each value out once, to
# whichever session asks: safe next to other catalogs' syncs; unused ones are gaps, as
# after a rollback). Same transaction and lock as the staged path: readers see nothing
# until the commit. Parent links and extension counts need every package's id, so they
# are written at the end from the names held in memory (one int per package).
# ---------------------------------------------------------------------------------------
DIRECT_FIRST_IMPORT = True  # tests turn it off to compare with the staged path

_DIRECT_COLUMNS = {
    "package": "id, uuid, created, modified, catalog_id, name, description, homepage, "
    "categories, licenses, maintainers, is_extension, content_hash, version_count, "
    "extension_count",
    "version": "id, uuid, created, modified, package_id, catalog_id, version, module_version, "
    "release_date, dependencies, metadata, sort_index, content_hash",
    "target": "id, uuid, created, modified, version_id, catalog_id, target_type, target_name, "
    "target_subtype, location, metadata, gpu_architectures, content_hash",
    "package_parent": "package_id, parent_id, catalog_id",
}
# Version-4 uuids: 16 random bytes with the version nibble set to 4 and the variant to 10xx,
# as 32 hex digits (a form PostgreSQL parses). Drawn from os.urandom in blocks: one system
# call per row would cost ~1 s at ~100k rows (each one gives up the interpreter lock while
# the COPY thread holds it), uuid.uuid4() ~2.5x more than this.
_UUID_KEEP = ((1 << 128) - 1) & ~(0xF << 76) & ~(0x3 << 62)
_UUID_SET = (0x4 << 76) | (0x2 << 62)


class _Uuids:
    def __init__(self) -> None:
        self._free: list[str] = []

    def take(self) -> str:
        if not self._free:
            raw = os.urandom(16 * BATCH_ROWS)
            self._free = [
                "%032x" % (int.from_bytes(raw[i : i + 16]) & _UUID_KEEP | _UUID_SET)
                for i in range(0, len(raw), 16)
            ]
        return self._free.pop()


class _Ids:
    """Ids of one table, reserved from its sequence in blocks that double up to 32,768: few
    round trips (each may wait for the COPY in flight on the connection), and at most half
    of the last block left unused (gaps, as after a rollback: harmless in a bigint)."""

    def __init__(self, cur: Any, table: str) -> None:
        self._cur = cur
        self._sql = (
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)"
        )
        self._block = BATCH_ROWS
        self._free: list[int] = []

    def take(self) -> int:
        if not self._free:
            self._cur.execute(self._sql, (self._block,))
            self._free = [row[0] for row in self._cur.fetchall()]
            self._free.reverse()  # pop() from the end hands them out in ascending order
            self._block = min(self._block * 2, 32768)
        return self._free.pop()


# A batch: each table's rows already in COPY text form.
_Batch = dict[str, bytearray]


class _Sender:
    """COPYs batches from a thread of its own, so that PostgreSQL inserts one batch while
    Python reads and encodes the next: done in turn, the two costs add up, because every
    COPY ends waiting for the server. Batches go in order and each one's tables parents
    first, so the foreign keys (checked row by row) always find their parent rows. The
    queue is bounded: at most three batches are held, whatever the snapshot's size.

    The rows are encoded by the caller, and this thread only hands bytes to libpq: Python
    code here would need the interpreter lock, which the busy reading thread gives up only
    every few milliseconds, and the server would starve."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="syncd-copy", daemon=True)
        self._thread.start()

    def send(self, batch: _Batch) -> None:
        self.raise_error()
        self._queue.put(batch)

    def join(self) -> None:
        """Wait until every batch is sent (or dropped after an error): the connection must be
        idle before the transaction goes on, commits or rolls back."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        with self._raw.cursor() as cur:
            while (batch := self._queue.get()) is not None:
                if self._error is not None:
                    continue  # the transaction is lost: drop what is left
                try:
                    for table, data in batch.items():
                        if data:
                            sql = f"COPY {table} ({_DIRECT_COLUMNS[table]}) FROM STDIN"
                            with cur.copy(sql) as copy:
                                copy.write(data)
                except BaseException as exc:  # raised in the caller's thread
                    self._error = exc


def _new_batch() -> _Batch:
    return {table: bytearray() for table in _DIRECT_COLUMNS}


def _direct_import(
    conn: Connection, catalog_id: int, snapshot: CatalogSnapshot, now: datetime
) -> tuple[_Staged, SyncStats, int]:
    """Write `snapshot` into the empty catalog; returns what the staged path would: what was
    written, the stats (all created) and the unknown parent count."""
    raw: Any = conn.connection.driver_connection
    staged = _Staged()
    stamp = now.isoformat()  # text: cheaper to send than a datetime per row and column
    ids: dict[str, int] = {}  # package name -> id, for the parent links
    links: list[tuple[int, str]] = []  # (child id, parent name)
    new_uuid = _Uuids().take
    # put(row, batch[table]) encodes a row with psycopg's own COPY text encoder (what
    # copy.write_row calls), in this thread: see _Sender.
    encoder = Transformer.from_context(raw)

    def put(row: tuple[Any, ...], out: bytearray) -> None:
        format_row_text(row, encoder, out)

    with raw.cursor() as cur:
        package_ids, version_ids, target_ids = (
            _Ids(cur, table) for table in ("package", "version", "target")
        )
        sender = _Sender(raw)
        try:
            batch = _new_batch()
            versions_out, targets_out = batch["version"], batch["target"]
            pending = 0
            for package in _kept_packages(snapshot, staged):
                name = package.name
                homepage, versions, parents = _keep(staged, package)
                package_id = ids[name] = package_ids.take()
                for sort_index, (version, targets) in enumerate(versions):
                    version_id = version_ids.take()
                    row = _version_row(name, version, sort_index)
                    put(
                        (version_id, new_uuid(), stamp, stamp, package_id, catalog_id, *row[1:]),
                        versions_out,
                    )
                    for target in targets:
                        row = _target_row(name, version, target)
                        target_id = target_ids.take()
                        put(
                            (target_id, new_uuid(), stamp, stamp, version_id, catalog_id, *row[3:]),
                            targets_out,
                        )
                    pending += 1 + len(targets)
                row = _package_row(package, homepage, len(versions))
                put((package_id, new_uuid(), stamp, stamp, catalog_id, *row, 0), batch["package"])
                links.extend((package_id, parent) for parent in parents)
                pending += 1
                # Only between packages: a package's row must go no later than its versions.
                if pending >= BATCH_ROWS:
                    sender.send(batch)
                    batch = _new_batch()
                    versions_out, targets_out = batch["version"], batch["target"]
                    pending = 0
            # As the staged path: links to packages the snapshot does not hold are left
            # out, and a package's extension_count is the number of packages naming it.
            extensions: dict[int, int] = {}  # parent id -> links to it
            for child_id, parent in links:
                parent_id = ids.get(parent)
                if parent_id is not None:
                    put((child_id, parent_id, catalog_id), batch["package_parent"])
                    extensions[parent_id] = extensions.get(parent_id, 0) + 1
            sender.send(batch)
        except psycopg.Error:
            # A failed COPY aborts the transaction, and what fails next here says only
            # that: report the COPY's own error.
            sender.join()
            sender.raise_error()
            raise
        finally:
            sender.join()  # also when reading failed: that error propagates unchanged
        sender.raise_error()
        if extensions:
            cur.execute(
                "UPDATE package SET extension_count = x.n "
                "FROM unnest(%s::bigint[], %s::integer[]) AS x(id, n) WHERE package.id = x.id",
                (list(extensions), list(extensions.values())),
            )
    resolved = sum(extensions.values())
    staged.parent_links = resolved
    stats = SyncStats()
    stats.packages.created = staged.packages
    stats.versions.created = staged.versions
    stats.targets.created = staged.targets
    stats.parent_links.created = resolved
    return staged, stats, len(links) - resolved


# ---------------------------------------------------------------------------------------
# The catalog row
# ---------------------------------------------------------------------------------------
_catalog = cast(Table, Catalog.__table__)


def _catalog_hash(description: str, source_url: str, meta: dict[str, Any]) -> str:
    return _digest((description, source_url), _json(meta))


def _read_catalog(conn: Connection, catalog_id: int) -> dict[str, Any]:
    c = _catalog.c
    row = conn.execute(
        select(
            c.name,
            c.version,
            c.catalog_type,
            c.description,
            c.source_url,
            c.metadata,
            c.package_count,
            c.version_count,
            c.target_count,
            c.upstream_validators,
            c.content_hash,
        ).where(c.id == catalog_id)
    ).one_or_none()
    if row is None:
        raise UnknownCatalogError(f"catalog {catalog_id} does not exist (deleted meanwhile?)")
    return dict(row._mapping)


def _update_catalog(
    conn: Connection,
    catalog_id: int,
    current: dict[str, Any],
    snapshot: CatalogSnapshot,
    staged: _Staged,
    now: datetime,
) -> bool:
    """Write the catalog-level fields if any of them changed; True if the row was written."""
    info = snapshot.catalog
    source_url = info.source_url or current["source_url"]
    wanted = {
        "description": info.description,
        "source_url": source_url,
        "metadata": info.metadata,
        "package_count": staged.packages,
        "version_count": staged.versions,
        "target_count": staged.targets,
        "upstream_validators": snapshot.validators,
        "content_hash": _catalog_hash(info.description, source_url, info.metadata),
    }
    if info.rolling and info.version and info.version != current["version"]:
        # A rolling upstream (Spack keeps only its latest data) moved on: the catalog row
        # follows it rather than keep a label that no longer describes its contents.
        _check_label_free(conn, catalog_id, current, info.version)
        wanted["version"] = info.version
    changed = {key: value for key, value in wanted.items() if current.get(key) != value}
    if not changed:
        return False
    conn.execute(
        update(_catalog).where(_catalog.c.id == catalog_id).values(modified=now, **changed)
    )
    return True


def _check_label_free(
    conn: Connection, catalog_id: int, current: dict[str, Any], version: str
) -> None:
    c = _catalog.c
    other = conn.execute(
        select(c.uuid).where(
            c.name == current["name"],
            c.version == version,
            c.catalog_type == current["catalog_type"],
            c.id != catalog_id,
        )
    ).scalar_one_or_none()
    if other is not None:
        raise PermanentError(
            f"Upstream now offers {current['name']} {version} instead of {current['version']}, "
            f"and catalog {other.hex} already holds {version}: update that catalog, or "
            f"delete one of the two."
        )


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------
def sync_catalog(
    engine: Engine, catalog_id: int, snapshot: CatalogSnapshot, *, lock_timeout: float = 30.0
) -> SyncStats:
    """Make catalog `catalog_id` hold exactly `snapshot`, in one transaction under its lock.

    Consumes `snapshot.packages` once. Raises LockBusyError when another sync of the same
    catalog holds the lock for longer than `lock_timeout` seconds, UnknownCatalogError when
    the catalog row does not exist, and TransientError/PermanentError for database
    failures; whatever the snapshot's generator raises propagates unchanged. On any error
    the catalog keeps its previous contents.
    """
    log = structlog.get_logger().bind(
        catalog_id=catalog_id,
        catalog_name=snapshot.catalog.name,
        catalog_version=snapshot.catalog.version,
    )
    started = time.perf_counter()
    try:
        with catalog_transaction(engine, catalog_id, timeout=lock_timeout) as conn:
            dialect = conn.dialect.name
            now = datetime.now(UTC)
            current = _read_catalog(conn, catalog_id)
            if dialect == "postgresql" and DIRECT_FIRST_IMPORT and _is_empty(conn, catalog_id):
                staged, stats, unknown_parents = _direct_import(conn, catalog_id, snapshot, now)
                staged_at = time.perf_counter()
            else:
                _create_staging(conn, dialect)
                staged = _stage_snapshot(conn, dialect, snapshot)
                staged_at = time.perf_counter()
                stats, unknown_parents = _Differ(conn, dialect, catalog_id, now).apply(staged)
            catalog_written = _update_catalog(conn, catalog_id, current, snapshot, staged, now)
            _drop_staging(conn, dialect)
    except SyncdError:
        raise
    except (DBAPIError, psycopg.Error, sqlite3.Error) as exc:
        raise _database_error(catalog_id, exc) from exc
    if dialect == "sqlite" and stats.rows_written:
        _refresh_sqlite_statistics(engine, log)
    duration = time.perf_counter() - started
    cache_events.data_changed()  # committed: in-process caches (the API's) start over
    _record_metrics(f"{snapshot.catalog.name}/{snapshot.catalog.version}", stats, duration)
    if staged.skipped:
        log.warning("records_skipped", count=staged.skipped, first=staged.skipped_examples)
    log.info(
        "sync_finished",
        **stats.as_dict(),
        rows_written=stats.rows_written,
        catalog_row_written=catalog_written,
        unknown_parents=unknown_parents,
        duplicates_ignored=staged.duplicates,
        skipped=staged.skipped,
        duration_s=round(duration, 3),
        # Reading + staging the stream (includes the adapter's parsing) vs the diff.
        stage_s=round(staged_at - started, 3),
    )
    return stats


def _refresh_sqlite_statistics(engine: Engine, log: Any) -> None:
    """ANALYZE after a sync that wrote rows, on SQLite (the embedded default).

    SQLite keeps no statistics unless told, and without them it picked a plan that took
    minutes for `?cpu_family=` on packages once EESSI and Spack were both imported (0.04 s
    with them). It costs about 0.06 s at that size. PostgreSQL's autovacuum does this itself.
    Committed already: a failure here (a busy database) costs only plan quality.
    """
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    except DBAPIError as exc:
        log.warning("statistics_refresh_failed", error=str(exc).splitlines()[0])


def _database_error(catalog_id: int, exc: Exception) -> SyncdError:
    """Classify a database failure for the retry decision (connection trouble is transient,
    data the schema rejects is not)."""
    orig = getattr(exc, "orig", None) or exc
    message = f"catalog {catalog_id}: database error during sync: {orig}".strip()
    transient = isinstance(
        exc, (OperationalError, InterfaceError, psycopg.OperationalError, sqlite3.OperationalError)
    ) or bool(getattr(exc, "connection_invalidated", False))
    return TransientError(message) if transient else PermanentError(message)


def _record_metrics(catalog: str, stats: SyncStats, duration: float) -> None:
    metrics.SYNC_DURATION.labels(catalog=catalog).observe(duration)
    for kind, counts in (
        ("packages", stats.packages),
        ("versions", stats.versions),
        ("targets", stats.targets),
        ("parent_links", stats.parent_links),
    ):
        for operation in ("created", "updated", "deleted"):
            n = getattr(counts, operation)
            if n:
                metrics.ROWS_WRITTEN.labels(kind=kind, operation=operation).inc(n)
