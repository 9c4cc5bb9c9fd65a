"""An index for the target list's default order (newest first)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

Waldur lists targets newest first (["-created", "id"]); without an index the first page of
the unfiltered list sorts every target (0.5 s for both full EESSI stacks on PostgreSQL).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_target_created_desc_id ON target (created DESC, id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_target_created_desc_id")
