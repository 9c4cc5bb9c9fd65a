"""offering_catalog and api_token_offering: Waldur offerings' links to catalogs, and the
offerings a non-staff token may manage

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

New tables only: nothing to backfill (no offering had a link, no token a grant, before this
revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "offering_catalog",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offering_uuid", sa.Uuid(), nullable=False),
        sa.Column("catalog_id", ID, nullable=False),
        sa.Column("enabled_cpu_family", JSON, nullable=False),
        sa.Column("enabled_cpu_microarchitectures", JSON, nullable=False),
        sa.Column("partition_uuid", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["catalog_id"],
            ["catalog.id"],
            name=op.f("fk_offering_catalog_catalog_id_catalog"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offering_catalog")),
        sa.UniqueConstraint("offering_uuid", "catalog_id", name="uq_offering_catalog_offering"),
        sa.UniqueConstraint("uuid", name=op.f("uq_offering_catalog_uuid")),
    )
    with op.batch_alter_table("offering_catalog", schema=None) as batch_op:
        batch_op.create_index("ix_offering_catalog_catalog_id", ["catalog_id"], unique=False)
    op.create_table(
        "api_token_offering",
        sa.Column("token_id", ID, nullable=False),
        sa.Column("offering_uuid", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_token.id"],
            name=op.f("fk_api_token_offering_token_id_api_token"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_id", "offering_uuid", name=op.f("pk_api_token_offering")),
    )


def downgrade() -> None:
    op.drop_table("api_token_offering")
    with op.batch_alter_table("offering_catalog", schema=None) as batch_op:
        batch_op.drop_index("ix_offering_catalog_catalog_id")
    op.drop_table("offering_catalog")
