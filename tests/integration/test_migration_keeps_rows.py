"""Upgrading a database that holds catalogs keeps every row. On SQLite a batch migration
rebuilds a table (copy, DROP, rename); with foreign keys on, the DROP deleted every row that
referenced the table: adding a column to `package` (migration 0011) emptied `version`,
`target` and `package_parent`. The migrations now run with foreign keys off on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from syncd.db.engine import make_engine
from syncd.db.migrate import upgrade
from tests.support.services import postgres_database

# The revision the last landed release stood at: every later migration runs over the rows.
FROM_REVISION = "0007"
STAMP = "2026-01-01 00:00:00+00:00"
ROWS = {
    "catalog": (
        "INSERT INTO catalog (id, uuid, created, modified, name, version, catalog_type, "
        "source_url, description, metadata, auto_update_enabled, update_errors, package_count, "
        "version_count, target_count, upstream_validators, content_hash) VALUES (1, :u, :t, :t, "
        "'EESSI', '2023.06', 'binary_runtime', '', '', '{}', true, '', 2, 1, 1, '{}', '')"
    ),
    "package": (
        "INSERT INTO package (id, uuid, created, modified, catalog_id, name, description, "
        "homepage, categories, licenses, maintainers, is_extension, content_hash, "
        "version_count, extension_count) VALUES (:n, :u, :t, :t, 1, :name, '', '', '[]', "
        "'[]', '[]', false, '', 1, 0)"
    ),
    "version": (
        "INSERT INTO version (id, uuid, created, modified, package_id, catalog_id, version, "
        "module_version, dependencies, metadata, sort_index, content_hash) VALUES "
        "(1, :u, :t, :t, 1, 1, '2024.1', '', '[]', '{}', 0, '')"
    ),
    "target": (
        "INSERT INTO target (id, uuid, created, modified, version_id, catalog_id, target_type, "
        "target_name, target_subtype, location, metadata, gpu_architectures, content_hash) "
        "VALUES (1, :u, :t, :t, 1, 1, 'cpu_architecture', 'x86_64', 'x86_64/zen2', '', '{}', "
        "'[]', '')"
    ),
    "package_parent": (
        "INSERT INTO package_parent (package_id, parent_id, catalog_id) VALUES (2, 1, 1)"
    ),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        with postgres_database("syncd_migkeep") as url:
            yield url


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in ROWS
            }
    finally:
        engine.dispose()


def test_upgrading_a_filled_database_keeps_every_row(bare_url: str) -> None:
    upgrade(bare_url, FROM_REVISION)
    engine = make_engine(bare_url)
    try:
        with engine.begin() as conn:
            for table, sql in ROWS.items():
                names = ("GROMACS", "numpy") if table == "package" else ("",)
                for n, name in enumerate(names, start=1):
                    conn.execute(
                        text(sql), {"u": uuid.uuid4().hex, "t": STAMP, "n": n, "name": name}
                    )
    finally:
        engine.dispose()
    before = _counts(bare_url)
    assert before == {"catalog": 1, "package": 2, "version": 1, "target": 1, "package_parent": 1}
    upgrade(bare_url)
    assert _counts(bare_url) == before
    engine = make_engine(bare_url)
    try:
        with engine.connect() as conn:  # foreign keys are on again for the service
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
