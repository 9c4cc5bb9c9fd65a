"""An index for the package list ordered by `modified` (the portal's "recently updated")

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04

`o=-modified` sorted every package (12 ms of a full Spack + EESSI database per page, before
the page's texts were even read); the index serves the order, as ix_package_name serves
`o=name`.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_package_modified ON package (modified)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_package_modified")
