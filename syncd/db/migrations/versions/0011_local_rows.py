"""package/version/target.is_local: rows made by hand through the API, which syncs leave alone

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

Every existing row came from a sync, so the column is added as False everywhere (its server
default, which the sync's own INSERT and COPY statements also rely on: they never name it).
A partial index per table finds a catalog's local rows without reading its other rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("package", "version", "target")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("is_local", sa.Boolean(), server_default=sa.false(), nullable=False)
            )
        op.create_index(
            f"ix_{table}_local",
            table,
            ["catalog_id"],
            postgresql_where=sa.text("is_local"),
            sqlite_where=sa.text("is_local"),
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_local", table_name=table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("is_local")
