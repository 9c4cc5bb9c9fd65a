"""package.metadata: package-level upstream data shown on each version

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

Waldur's Spack loader puts the package's `downloads` into every version's metadata as
`package_downloads`. syncd keeps it once per package (copying it into each version doubled
the Spack import) and composes it into a version's metadata when it is shown. Existing rows
get {} (the server default, which also lets the sync's statements that do not name the
column insert); the next sync fills it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("package") as batch:
        batch.add_column(
            sa.Column("metadata", JSON_TYPE, nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("package") as batch:
        batch.drop_column("metadata")
