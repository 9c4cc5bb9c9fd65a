"""PostgreSQL indexes for the API's JSON filters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

GIN indexes serve the JSONB containment (@>) the category, license and gpu_arch filters
use; the expression index serves toolchain_name. SQLite has no equivalent and keeps the
sequential scans, which are fine at embedded sizes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_package_categories_gin", "package", "USING gin (categories)"),
    ("ix_package_licenses_gin", "package", "USING gin (licenses)"),
    ("ix_target_gpu_architectures_gin", "target", "USING gin (gpu_architectures)"),
    ("ix_version_toolchain_name", "version", "((metadata -> 'toolchain' ->> 'name'))"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, spec in INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {spec}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _table, _spec in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
