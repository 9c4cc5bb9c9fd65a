"""Migration 0025 on a filled database, both backends: the derived tables' foreign keys (and
version's and target's to catalog) go, the trigger package_derived_delete deletes a deleted
package's derived rows instead; the downgrade puts the foreign keys back and drops the
trigger; either way a package's or a catalog's deletion leaves no orphan, a concurrent one
(PostgreSQL) included."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, delete, inspect, select, text

from syncd.db.engine import make_engine
from syncd.db.migrate import alembic_config, current_revision
from syncd.db.tables import Catalog, Package
from syncd.readmodel import refresh_read_model
from tests.integration.test_migration_sort_keys import _fill
from tests.support.derived import DERIVED, assert_no_orphans, derived_packages
from tests.support.services import postgres_database

WITHOUT = ("package_read_model", "package_facet", "package_search", "version", "target")
TRIGGER = "package_derived_delete"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
        return
    with postgres_database("syncd_mig_0025") as found:
        yield found


def _fks(engine: Engine) -> set[str]:
    insp = inspect(engine)
    return {fk["name"] or "" for table in WITHOUT for fk in insp.get_foreign_keys(table)}


def _trigger(engine: Engine) -> bool:
    query = (
        "SELECT count(*) FROM pg_trigger WHERE tgname = :t"
        if engine.dialect.name == "postgresql"
        else "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = :t"
    )
    with engine.connect() as conn:
        return bool(conn.execute(text(query), {"t": TRIGGER}).scalar_one())


def _delete_package(engine: Engine, name: str) -> int:
    with engine.begin() as conn:
        found = conn.execute(select(Package.id).where(Package.name == name)).scalar_one()
        conn.execute(delete(Package).where(Package.id == found))
    return int(found)


def _held(engine: Engine) -> set[int]:
    return set().union(*derived_packages(engine).values())


def test_upgrade_and_downgrade_of_a_filled_database(url: str) -> None:
    config = alembic_config(url)
    engine = make_engine(url)
    try:
        command.upgrade(config, "head")  # filled by this code's sync, then taken back
        _fill(engine)
        command.downgrade(config, "0024")
        engine.dispose()  # a pooled SQLite connection reflects the schema it last saw
        with_fks = _fks(engine)
        assert "fk_package_facet_package_id_package" in with_fks
        assert "fk_target_catalog_id_catalog" in with_fks
        held = _held(engine)
        command.upgrade(config, "0025")
        assert current_revision(engine) == "0025"
        # The versions' and targets' own parents keep theirs.
        assert _fks(engine) == {"fk_version_package_id_package", "fk_target_version_id_version"}
        assert _trigger(engine) and _held(engine) == held  # no row lost to the rebuild
        gone = _delete_package(engine, "numpy")
        assert gone in held and gone not in _held(engine)
        assert_no_orphans(engine)

        command.downgrade(config, "0024")
        assert current_revision(engine) == "0024"
        assert _fks(engine) == with_fks and not _trigger(engine)
        gone = _delete_package(engine, "zlib")  # by the foreign keys' cascade again
        assert gone not in _held(engine)
        assert_no_orphans(engine)

        command.upgrade(config, "head")
        with engine.begin() as conn:
            conn.execute(delete(Catalog))
        assert derived_packages(engine) == {table: set() for table in DERIVED}
        assert_no_orphans(engine)
    finally:
        engine.dispose()


pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


def test_a_catalog_deleted_meanwhile_leaves_no_derived_row(pg_url: str) -> None:
    """PostgreSQL (SQLite has one writer): while a catalog's deletion is uncommitted (the
    API's takes no sync lock), a writer deriving rows of its packages waits for it, as the
    foreign keys' checks made it wait, and then finds no package to derive rows from. A
    first import's render (`fresh`) deletes nothing first, so only that wait keeps it out."""
    engine = make_engine(pg_url)
    try:
        _fill(engine)
        with engine.connect() as conn:
            catalog_id = conn.execute(select(Catalog.id)).scalar_one()
        with engine.connect() as deleting:
            deleting.execute(delete(Catalog).where(Catalog.id == catalog_id))
            writer = threading.Thread(target=_derive, args=(engine, catalog_id))
            writer.start()
            _wait_for_a_lock_wait(engine)
            deleting.commit()
            writer.join()
        assert derived_packages(engine) == {table: set() for table in DERIVED}
        assert_no_orphans(engine)
    finally:
        engine.dispose()


def _derive(engine: Engine, catalog_id: int) -> None:
    with engine.begin() as conn:
        refresh_read_model(conn, catalog_id, None, fresh=True)


def _wait_for_a_lock_wait(engine: Engine) -> None:
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while not conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one():
            assert time.monotonic() < deadline, "the writer never waited for the deletion"
            time.sleep(0.01)
            conn.rollback()  # a new snapshot of pg_stat_activity
