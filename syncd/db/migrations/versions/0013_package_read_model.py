"""package_read_model: each package's embedded list part (versions with targets, extensions)
as JSON text rendered by its writer

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

The table starts empty: until `syncd migrate` fills it (syncd.readmodel.fill_stale, run after
the upgrade) or a catalog's next sync does, the package list renders a missing fragment on
the fly, so answers are never wrong meanwhile.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "package_read_model",
        sa.Column("package_id", ID, nullable=False),
        sa.Column("catalog_id", ID, nullable=False),
        sa.Column("format", sa.Integer(), nullable=False),
        sa.Column("extensions", sa.Text(), nullable=False),
        sa.Column("versions", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["catalog_id"],
            ["catalog.id"],
            name=op.f("fk_package_read_model_catalog_id_catalog"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["package.id"],
            name=op.f("fk_package_read_model_package_id_package"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("package_id", name=op.f("pk_package_read_model")),
    )
    with op.batch_alter_table("package_read_model", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_package_read_model_catalog_id"), ["catalog_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("package_read_model")
