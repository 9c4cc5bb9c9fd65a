"""package_read_model.item_head / item_tail: each package's whole list object as JSON text

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

The object without its catalog's name, version and type (spliced in when a page is sent, so a
catalog's rename needs no rendering), its absolute URLs' base as a placeholder. Rows of the
previous FORMAT have none: until `syncd migrate` (fill_stale) or the catalog's next sync
renders them, a page holding one is answered by the route that renders on the fly.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("package_read_model") as batch:
        batch.add_column(sa.Column("item_head", sa.Text(), nullable=True))
        batch.add_column(sa.Column("item_tail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("package_read_model") as batch:
        batch.drop_column("item_tail")
        batch.drop_column("item_head")
