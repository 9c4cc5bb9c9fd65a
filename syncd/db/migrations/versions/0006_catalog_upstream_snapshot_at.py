"""catalog.upstream_snapshot_at: when upstream made the data a catalog holds

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

Nullable: NULL reads as "unknown", and an update then accepts any snapshot, as before this
column existed. EESSI and Spack catalogs are backfilled from the timestamp their metadata
already keeps (EESSI `timestamp`, Spack `last_update`), so that the very first update after
the upgrade is guarded against a stale mirror too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from adapters.base import upstream_time

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, catalog_type) -> the metadata key holding upstream's own timestamp.
_TIMESTAMP_KEYS = {
    ("EESSI", "binary_runtime"): "timestamp",
    ("Spack", "source_package"): "last_update",
}


def upgrade() -> None:
    with op.batch_alter_table("catalog", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("upstream_snapshot_at", sa.DateTime(timezone=True), nullable=True)
        )
    _backfill()


def _backfill() -> None:
    catalog = sa.table(
        "catalog",
        sa.column("id", sa.BigInteger()),
        sa.column("name", sa.String()),
        sa.column("catalog_type", sa.String()),
        sa.column("metadata", sa.JSON()),
        sa.column("upstream_snapshot_at", sa.DateTime(timezone=True)),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(catalog.c.id, catalog.c.name, catalog.c.catalog_type, catalog.c.metadata)
    ).all()
    for row in rows:
        key = _TIMESTAMP_KEYS.get((row.name, row.catalog_type))
        stamp = upstream_time((row.metadata or {}).get(key)) if key else None
        if stamp is not None:
            conn.execute(
                sa.update(catalog)
                .where(catalog.c.id == row.id)
                .values(upstream_snapshot_at=stamp.replace(microsecond=0))
            )


def downgrade() -> None:
    with op.batch_alter_table("catalog", schema=None) as batch_op:
        batch_op.drop_column("upstream_snapshot_at")
