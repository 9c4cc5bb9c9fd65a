"""Notify the API processes of every committed change to the data their cache serves

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-04

PostgreSQL only: a statement-level trigger on each table behind the API's cached answers
(syncd/api/cache.py CACHED_PREFIXES) calls pg_notify('syncd_data_changed', ''). PostgreSQL
delivers it at commit and folds a transaction's identical notifications into one, so a sync
of thousands of rows costs one notification; each API process LISTENs on one connection and
clears its response cache (syncd/api/cache_invalidation.py). SQLite needs nothing: the API
reads PRAGMA data_version.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "syncd_data_changed"  # syncd.api.cache_invalidation.CHANNEL
FUNCTION = "syncd_notify_data_changed"
# Everything an anonymous cached read shows: catalogs, their content and read models, the
# offering links, the sync history. Not the tokens (a request with one is never cached) nor
# the process tables (outbox, deliveries, outcomes, ticks), which change all the time.
TABLES = (
    "catalog",
    "package",
    "package_parent",
    "package_read_model",
    "package_facet",
    "package_search",
    "version",
    "target",
    "offering_catalog",
    "sync_run",
    "sync_change",
)


def _trigger(table: str) -> str:
    return f"{table}_notify_data_changed"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {_trigger(table)} "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {_trigger(table)} ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
