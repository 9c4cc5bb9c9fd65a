"""Each package's versions hash: a refresh stages only packages whose versions changed

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05

`package.versions_hash` is the hash of a package's versions and their targets as the sync
last wrote them (syncd/sync/versions_hash.py). A refresh compares each package's new hash
with the stored one and stages the versions and targets of changed packages only (issue 16:
a refresh of unchanged content read and diffed every row). NULL: unknown, the package is
staged in full (after this migration, until each package's next sync; a package holding
rows made through the API; after a hand write).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("package", sa.Column("versions_hash", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("package") as batch:
        batch.drop_column("versions_hash")
