"""A covering index of the package sort keys, and statistics of the facets' (kind, value)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04

An offering page (catalog + CPU facets) reads the matching packages' ids from the facet
index, then each one's catalog and sort key (lower(name), name or modified) to pick and
count the page: 3,144 probes of the package table for EESSI, 3 buffers each (index and
heap). With the keys in an index on the id, each probe is index-only: the offering's
matched set is read in ~5.7 ms instead of ~9.9 (docs/performance.md).

The planner estimated `kind = 'cpu_family' AND value = 'x86_64'` as the product of the two
columns' frequencies (377 rows; there are 3,144: a value belongs to one kind): it sorted a
CPU filter's whole matched set where walking the name index reads 79 packages for a page,
and probed the package table per match instead of merging index ranges. Statistics of the
pair (most common values) give it the real counts.

PostgreSQL only: SQLite's package rows are found by their rowid (the id) directly, and its
planner has no such statistics.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATISTICS = "st_package_facet_kind_value"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_package_sort_keys ON package (id)"
        " INCLUDE (catalog_id, name, modified)"
    )
    op.execute(
        f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (mcv) ON kind, value FROM package_facet"
    )
    # Gathered now: autovacuum's next ANALYZE may be far off on a table that does not change.
    op.execute("ANALYZE package_facet")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
    op.execute("DROP INDEX IF EXISTS ix_package_sort_keys")
