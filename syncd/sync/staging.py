"""Temporary staging tables and their batched loading: the snapshot is streamed once into the
database, so that the diff runs as set-based SQL there instead of row by row in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from syncd.domain import CatalogSnapshot
from syncd.sync.records import _keep, _kept_packages, _Staged
from syncd.sync.rows import BATCH_ROWS, _package_row, _target_row, _version_row, given_uuid
from syncd.sync.versions_hash import StoredHashes, versions_hash

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
    ("metadata", "json"),
    ("is_extension", "boolean"),
    ("content_hash", "text"),
    ("version_count", "integer"),
    ("new_uuid", "text"),
    # versions_hash.py: the hash of the package's staged versions and targets; `skipped`:
    # equal to the stored one, so they were not staged (`package_id`: the stored row).
    ("versions_hash", "text"),
    ("skipped", "boolean"),
    ("package_id", "bigint"),
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
    ("new_uuid", "text"),
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
    ("new_uuid", "text"),
)
# Columns filled by the diff after loading (ids resolved against the real tables).
_STAGE_EXTRA = {
    "stage_package": (("extension_count", "integer NOT NULL DEFAULT 0"),),
    "stage_parent": (("package_id", "bigint"), ("parent_id", "bigint")),
    "stage_version": (("package_id", "bigint"), ("version_id", "bigint")),
    "stage_target": (("version_id", "bigint"),),
    "stage_in_play": (),
}
_STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "stage_package": _STAGE_PACKAGE,
    "stage_parent": _STAGE_PARENT,
    "stage_version": _STAGE_VERSION,
    "stage_target": _STAGE_TARGET,
    # Filled by the diff (versions_hash.fill_in_play), not loaded.
    "stage_in_play": (("package_id", "bigint"),),
}
# The packages' staging keys, on both backends: a package is looked up by name and a
# skipped one by id, and a nested loop over the catalog's packages (PostgreSQL's plan when
# the tables' statistics are missing, right after an import) must probe an index, not
# scan the staging table once per package (1.5 s for Spack's).
STAGE_PACKAGE_INDEXES = (
    "CREATE INDEX {temp}ix_stage_package ON stage_package (name)",
    "CREATE INDEX {temp}ix_stage_package_skipped ON stage_package (package_id) WHERE skipped",
)
# SQLite looks rows up one by one, so it needs indexes on the other staging keys too
# (PostgreSQL hash-joins instead and only needs statistics).
_SQLITE_STAGE_INDEXES = (
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


def _stage_snapshot(
    conn: Connection,
    dialect: str,
    snapshot: CatalogSnapshot,
    max_field_chars: int,
    stored: StoredHashes | None = None,
) -> _Staged:
    """Stage `snapshot`; `stored`: the catalog's stored versions hashes (versions_hash.py),
    whose packages' versions and targets are staged only when their hash differs (None:
    stage everything, as a keep-missing sync must)."""
    loader = _Loader(conn, dialect)
    staged = _Staged(max_field_chars=max_field_chars)
    for package in _kept_packages(snapshot, staged):
        name = package.name
        homepage, versions, parents = _keep(staged, package)
        digest, plain = versions_hash(versions, max_field_chars)
        known = stored.get(name) if stored else None
        skipped = plain and known is not None and known[1] == digest
        if skipped:
            staged.unchanged_by_hash += 1
        else:
            staged.version_rows += len(versions)
            staged.target_rows += sum(len(version.targets) for version in versions)
            for sort_index, version in enumerate(versions):
                row = _version_row(name, version, sort_index, staged)
                loader.add("stage_version", (*row, given_uuid(version.uuid)))
                for target in version.targets:
                    row = _target_row(name, version, target, staged)
                    loader.add("stage_target", (*row, given_uuid(target.uuid)))
        row = _package_row(package, homepage, len(versions), staged)
        package_id = known[0] if skipped and known else None
        loader.add("stage_package", (*row, given_uuid(package.uuid), digest, skipped, package_id))
        for parent in parents:
            loader.add("stage_parent", (name, parent))
    loader.flush()
    return staged
