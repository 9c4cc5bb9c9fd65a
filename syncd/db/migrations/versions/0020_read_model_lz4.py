"""The read model's JSON texts compressed with lz4 where the server has it

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04

A package's stored texts (its versions with their targets: up to ~50 KB for an EESSI
package) are compressed when stored and decompressed on every page that shows them.
PostgreSQL's default, pglz, cost a full Spack + EESSI store 1.23 s to compress (lz4: 0.39 s)
and reads them back more slowly. New writes use lz4; rows already stored keep pglz until
their next render. Servers built without lz4 (PostgreSQL before 14, or without the library)
keep pglz: the migration then does nothing. SQLite stores them as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("versions", "extensions", "item_head", "item_tail")


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    values = bind.execute(
        sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    return values is not None and "lz4" in values


def _set(method: str) -> None:
    if not _lz4_available():
        return
    for column in COLUMNS:
        op.execute(f"ALTER TABLE package_read_model ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")
