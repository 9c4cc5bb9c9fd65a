"""Migration 0021 builds the trigram index of the search text over a filled database and
takes it away again; `query` answers the same rows with and without it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url

from syncd.db.engine import make_engine
from syncd.db.migrate import alembic_config, upgrade
from syncd.readmodel.facets import refresh_facets
from tests.support.services import postgres_database

STAMP = "2026-01-01 00:00:00+00:00"
CATALOG = (
    "INSERT INTO catalog (id, uuid, created, modified, name, version, catalog_type, "
    "source_url, description, metadata, auto_update_enabled, update_errors, package_count, "
    "version_count, target_count, upstream_validators, content_hash) VALUES (1, :u, :t, :t, "
    "'Spack', '1', 'source_package', '', '', '{}', true, '', 3, 0, 0, '{}', '')"
)
PACKAGE = (
    "INSERT INTO package (id, uuid, created, modified, catalog_id, name, description, "
    "homepage, categories, licenses, maintainers, is_extension, content_hash, "
    "version_count, extension_count) VALUES (:n, :u, :t, :t, 1, :name, :d, '', '[]', "
    "'[]', '[]', false, '', 0, 0)"
)
PACKAGES = [("py-rasterio", "Raster I/O"), ("gromacs", "Molecular dynamics"), ("zlib", "")]
MATCHES = "SELECT package_id FROM package_search WHERE search_text LIKE :p ORDER BY 1"


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_database("syncd_migtrgm") as made:
        yield made


def _index_and_rows(url: str) -> tuple[bool, list[list[int]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            index = conn.execute(
                text("SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_package_search_trgm'")
            ).scalar_one()
            rows = [
                list(conn.execute(text(MATCHES), {"p": p}).scalars())
                for p in ("%ras%", "%dyn%", "%o%", "%nothing%")
            ]
    finally:
        engine.dispose()
    return bool(index), rows


def test_upgrade_of_a_filled_database_builds_the_index_and_downgrade_drops_it(url: str) -> None:
    upgrade(url, "0020")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(CATALOG), {"u": uuid.uuid4().hex, "t": STAMP})
            for n, (name, description) in enumerate(PACKAGES, start=1):
                row = {"u": uuid.uuid4().hex, "t": STAMP, "n": n, "name": name, "d": description}
                conn.execute(text(PACKAGE), row)
            refresh_facets(conn, None, None)
    finally:
        engine.dispose()
    before = _index_and_rows(url)
    assert before == (False, [[1], [2], [1, 2], []])
    upgrade(url, "0021")
    assert _index_and_rows(url) == (True, before[1])
    command.downgrade(alembic_config(url), "0020")
    assert _index_and_rows(url) == before


def test_a_role_that_may_not_create_the_extension_migrates_without_the_index() -> None:
    """A managed database's application role (no CREATE on the database) cannot create
    pg_trgm: the migration goes on without the index and `query` keeps its answers."""
    role = f"syncd_noext_{uuid.uuid4().hex[:8]}"
    with postgres_database("syncd_migtrgm_role") as admin_url:
        admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
                conn.execute(text(f'GRANT ALL ON SCHEMA public TO "{role}"'))
            role_url = make_url(admin_url).set(username=role).render_as_string(False)
            upgrade(role_url)
            index, rows = _index_and_rows(role_url)
            with admin.connect() as conn:
                extension = conn.execute(
                    text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")
                ).scalar_one()
            assert (index, extension) == (False, 0)
            assert rows == [[], [], [], []]  # an empty catalog, searched by the scan
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP OWNED BY "{role}"'))
            admin.dispose()
            with make_engine(admin_url).connect() as conn:
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
                conn.commit()
