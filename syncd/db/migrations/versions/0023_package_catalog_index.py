"""An index of each catalog's packages in id order

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05

An offering page (a catalog + CPU facets) was counted by reading every package's sort keys
(12,057 entries of ix_package_sort_keys) to keep the catalog's 3,144 EESSI packages: the
catalog's packages had no index range in id order to merge with the facets' ranges
(package_facet's primary key is (kind, value, package_id)). With (catalog_id, id) the
count is three merged index ranges of the matches' size (~4.4 -> ~2 ms;
syncd/api/offering_page.py, docs/performance.md).

PostgreSQL only, as 0022: SQLite lists take matched_page's path.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_package_catalog_id"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON package (catalog_id, id)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
