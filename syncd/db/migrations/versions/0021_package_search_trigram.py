"""A trigram index on the stored search text, for `query` values of 3 characters or more

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04

`query` was one LIKE '%q%' scan of the whole search text (2.2 MB, 6-8 ms per request on
full Spack + EESSI). pg_trgm's GIN index answers LIKE '%q%' for a value of 3 or more
characters from the trigrams of q (0.1-1 ms for the portal's prefixes; the rows it finds
are rechecked, so results are exact); shorter values have no trigram and keep the scan
(query_search.query_condition). pg_trgm is a trusted extension (PostgreSQL 13+): a role
with CREATE on the database creates it. Where the server lacks it, or the role may not create
it (a managed database whose application role is not the owner), the migration logs a
warning and does nothing: the scan stays, results are the same. SQLite: nothing (its scan is
fast enough).
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _trigrams_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.execute(
            sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")
        ).scalar()
    )


def _create_extension() -> bool:
    """pg_trgm created (or there already); False, with a warning, where this role may not."""
    bind = op.get_bind()
    try:
        with bind.begin_nested():  # a savepoint: the refusal must not abort the migration
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        logging.getLogger("alembic.runtime.migration").warning(
            "pg_trgm not created (%s); `query` keeps scanning the search text",
            str(exc.orig).strip().splitlines()[0],
        )
        return False
    return True


def upgrade() -> None:
    if not _trigrams_available() or not _create_extension():
        return
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_package_search_trgm ON package_search "
        "USING gin (search_text gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # The extension stays: other objects may use it, and it costs nothing unused.
    op.execute("DROP INDEX IF EXISTS ix_package_search_trgm")
