"""sync_run, sync_change and event_outbox: every attempt of a command on a catalog, what it
changed, and the events that report it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

New tables only: no run was recorded before this revision, so there is nothing to backfill.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sync_run",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("catalog_uuid", sa.Uuid(), nullable=True),
        sa.Column("catalog_name", sa.String(length=100), nullable=False),
        sa.Column("catalog_version", sa.String(length=50), nullable=False),
        sa.Column("catalog_type", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("command", sa.String(length=50), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("started", STAMP, nullable=False),
        sa.Column("finished", STAMP, nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("validators", JSON, nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("change_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_run")),
        sa.UniqueConstraint("uuid", name=op.f("uq_sync_run_uuid")),
    )
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.create_index("ix_sync_run_catalog_started", ["catalog_uuid", "started"])
        batch_op.create_index(batch_op.f("ix_sync_run_started"), ["started"])
        batch_op.create_index(batch_op.f("ix_sync_run_outcome"), ["outcome"])
    op.create_table(
        "sync_change",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("catalog_uuid", sa.Uuid(), nullable=True),
        sa.Column("created", STAMP, nullable=False),
        sa.Column("change", sa.String(length=30), nullable=False),
        sa.Column("package_name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("module_version", sa.String(length=150), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_run.id"],
            name=op.f("fk_sync_change_run_id_sync_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_change")),
        sa.UniqueConstraint("uuid", name=op.f("uq_sync_change_uuid")),
    )
    with op.batch_alter_table("sync_change", schema=None) as batch_op:
        batch_op.create_index("ix_sync_change_catalog_created", ["catalog_uuid", "created"])
        batch_op.create_index("ix_sync_change_created", ["created"])
        batch_op.create_index(batch_op.f("ix_sync_change_run_id"), ["run_id"])
        batch_op.create_index(batch_op.f("ix_sync_change_change"), ["change"])
    op.create_table(
        "event_outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", STAMP, nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("published_at", STAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_event_outbox_event_id")),
    )
    with op.batch_alter_table("event_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_outbox_occurred_at"), ["occurred_at"])
        batch_op.create_index(
            "ix_event_outbox_unpublished",
            ["id"],
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )


def downgrade() -> None:
    op.drop_table("event_outbox")
    op.drop_table("sync_change")
    op.drop_table("sync_run")
