"""catalog.update_enqueued_at: the scheduler's pending update

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

A nullable timestamp, so existing rows need no backfill: NULL reads as "nothing enqueued",
which is what the scheduler assumed of every catalog before this column existed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: a plain ALTER TABLE ADD COLUMN on both backends, and SQLite's table copy
    # for the drop in downgrade().
    with op.batch_alter_table("catalog", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("update_enqueued_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("catalog", schema=None) as batch_op:
        batch_op.drop_column("update_enqueued_at")
