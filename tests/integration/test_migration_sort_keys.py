"""Migration 0022 on a filled database: PostgreSQL gets the package sort keys' covering index
and the facets' (kind, value) statistics, gathered at once (the planner's estimate of a
facet's packages is the real count); the downgrade removes both. SQLite: nothing to do,
both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

from syncd.db.engine import make_engine
from syncd.db.migrate import alembic_config, current_revision
from syncd.sync import sync_catalog
from tests.integration.test_facets import first_snapshot, new_catalog
from tests.support.records import catalog_info, snapshot
from tests.support.services import postgres_database

FACET = "WHERE kind = 'cpu_family' AND value = 'x86_64'"


def _indexes(engine: Engine) -> set[str]:
    return {i["name"] or "" for i in inspect(engine).get_indexes("package")}


def _estimate(engine: Engine) -> tuple[int, int]:
    """(planner's rows, actual rows) of one facet's range."""
    with engine.connect() as conn:
        plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM package_facet {FACET}"))
        actual = conn.execute(text(f"SELECT count(*) FROM package_facet {FACET}")).scalar_one()
        return int(plan.scalar_one()[0]["Plan"]["Plan Rows"]), int(actual)


def _fill(engine: Engine) -> None:
    catalog_id = new_catalog(engine)
    sync_catalog(engine, catalog_id, snapshot(first_snapshot(), info=catalog_info()))


def filled_at(config: Config, engine: Engine, revision: str) -> None:
    """The database at `revision`, holding a synced catalog: filled at head by this code's
    sync, then downgraded (an older revision lacks columns the sync writes)."""
    command.upgrade(config, "head")
    _fill(engine)
    command.downgrade(config, revision)


def test_upgrade_of_a_filled_postgresql_database_and_downgrade() -> None:
    with postgres_database("syncd_mig_0022") as url:
        config = alembic_config(url)
        engine = make_engine(url)
        try:
            filled_at(config, engine, "0021")
            with engine.begin() as conn:
                conn.execute(text("ANALYZE package_facet"))
            before, actual = _estimate(engine)
            assert before != actual  # the product of the columns' frequencies
            command.upgrade(config, "0022")
            assert current_revision(engine) == "0022"
            assert "ix_package_sort_keys" in _indexes(engine)
            assert _estimate(engine) == (actual, actual)
            command.downgrade(config, "0021")
            assert "ix_package_sort_keys" not in _indexes(engine)
            with engine.connect() as conn:
                assert not conn.execute(text("SELECT stxname FROM pg_statistic_ext")).all()
        finally:
            engine.dispose()


def test_sqlite_upgrade_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    config = alembic_config(url)
    engine = make_engine(url)
    try:
        filled_at(config, engine, "0021")
        command.upgrade(config, "0022")
        assert current_revision(engine) == "0022"
        assert "ix_package_sort_keys" not in _indexes(engine)
        command.downgrade(config, "0021")
        assert current_revision(engine) == "0021"
    finally:
        engine.dispose()


pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
