"""Migration 0023 on a filled database: PostgreSQL gets the index of each catalog's packages
in id order (an offering page's count merges its range with the facets'), and the
downgrade removes it. SQLite: nothing to do, both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command

from syncd.db.engine import make_engine
from syncd.db.migrate import alembic_config, current_revision
from tests.integration.test_migration_sort_keys import _indexes, filled_at
from tests.support.services import postgres_database

INDEX = "ix_package_catalog_id"


def test_upgrade_of_a_filled_postgresql_database_and_downgrade() -> None:
    with postgres_database("syncd_mig_0023") as url:
        config = alembic_config(url)
        engine = make_engine(url)
        try:
            filled_at(config, engine, "0022")
            assert INDEX not in _indexes(engine)
            command.upgrade(config, "0023")
            assert current_revision(engine) == "0023"
            assert INDEX in _indexes(engine)
            command.downgrade(config, "0022")
            assert current_revision(engine) == "0022"
            assert INDEX not in _indexes(engine)
        finally:
            engine.dispose()


def test_sqlite_upgrade_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    config = alembic_config(url)
    engine = make_engine(url)
    try:
        filled_at(config, engine, "0022")
        command.upgrade(config, "0023")
        assert current_revision(engine) == "0023"
        assert INDEX not in _indexes(engine)
        command.downgrade(config, "0022")
        assert current_revision(engine) == "0022"
    finally:
        engine.dispose()


pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
