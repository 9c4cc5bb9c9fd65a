"""Alembic environment: runs against the URL syncd passes in (see syncd.db.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from syncd.db.engine import make_engine
from syncd.db.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by syncd.db.migrate"
    connectable = make_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration rebuilds a table (copy, DROP, rename). With foreign keys on,
            # the DROP deletes every row that references the table, ON DELETE CASCADE: adding
            # a column to `package` emptied `version`. Off for the migration (outside any
            # transaction, where SQLite honours the pragma), checked before it commits.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    orphans = broken[:5]
                    raise RuntimeError(f"the migration left rows without parents: {orphans}")
    connectable.dispose()


run_migrations_online()
