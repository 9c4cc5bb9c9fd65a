"""command_outcome: how a published command's latest attempt ended, by message id

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

A new table only: nothing to backfill (commands published before it have no outcome, and a
`--wait` on them falls back to its timeout as before).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "command_outcome",
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=50), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("catalog_uuid", sa.Uuid(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_command_outcome")),
    )
    with op.batch_alter_table("command_outcome", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_command_outcome_finished_at"), ["finished_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("command_outcome", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_command_outcome_finished_at"))
    op.drop_table("command_outcome")
