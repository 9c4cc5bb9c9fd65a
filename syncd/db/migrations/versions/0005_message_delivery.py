"""message_delivery: how many times a worker died running a message, by message id

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

A new table only: nothing to backfill (a message redelivered after the upgrade starts
counting at its next redelivery).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_delivery",
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("deaths", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_delivery")),
    )
    with op.batch_alter_table("message_delivery", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_delivery_last_seen_at"), ["last_seen_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("message_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_delivery_last_seen_at"))
    op.drop_table("message_delivery")
