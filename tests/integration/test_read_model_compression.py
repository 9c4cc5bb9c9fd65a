"""Migration 0020: the read model's texts are compressed with lz4 on a PostgreSQL built with
it (the pglz default cost a full import ~0.8 s more and every page more to read back), and
stored rows read back unchanged.
"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, text

from syncd.db.engine import make_engine
from syncd.db.migrate import alembic_config, upgrade
from syncd.readmodel.store import render_packages
from syncd.sync import sync_catalog
from tests.integration.test_facets import first_snapshot, new_catalog
from tests.support.records import catalog_info, snapshot
from tests.support.services import postgres_database

COLUMNS = {"versions", "extensions", "item_head", "item_tail"}


def _methods(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT attname, attcompression FROM pg_attribute "
                "WHERE attrelid = 'package_read_model'::regclass AND attnum > 0"
            )
        )
        return {name: method for name, method in rows if name in COLUMNS}


def _lz4(engine: Engine) -> bool:
    with engine.connect() as conn:
        values = conn.execute(
            text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        ).scalar()
    return "lz4" in (values or [])


def test_read_model_texts_use_lz4_and_read_back_unchanged() -> None:
    with postgres_database("syncd_lz4_mig") as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            if not _lz4(engine):
                pytest.skip("this PostgreSQL has no lz4 (the migration keeps pglz there)")
            assert _methods(engine) == dict.fromkeys(COLUMNS, "l")
            catalog_id = new_catalog(engine)
            sync_catalog(engine, catalog_id, snapshot(first_snapshot(), info=catalog_info()))
            with engine.begin() as conn:
                # A text over TOAST's threshold (~2 KB) is compressed with the column's method.
                conn.execute(
                    text("UPDATE package_read_model SET item_head = item_head || :pad"),
                    {"pad": " " * 10_000},
                )
                before = conn.execute(
                    text("SELECT package_id, versions, extensions FROM package_read_model")
                ).all()
                assert conn.execute(
                    text("SELECT DISTINCT pg_column_compression(item_head) FROM package_read_model")
                ).scalars().all() == ["lz4"]
                render_packages(conn, catalog_id, None)
                after = conn.execute(
                    text("SELECT package_id, versions, extensions FROM package_read_model")
                ).all()
            assert before and sorted(before) == sorted(after)
            command.downgrade(alembic_config(url), "0019")
            assert _methods(engine) == dict.fromkeys(COLUMNS, "p")
        finally:
            engine.dispose()
