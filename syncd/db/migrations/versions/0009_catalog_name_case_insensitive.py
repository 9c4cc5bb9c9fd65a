"""catalog: names that differ only in case are one name (unique lower(name), version, type)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

A unique expression index on (lower(name), version, catalog_type), on SQLite and PostgreSQL,
next to the existing unique (name, version, catalog_type). The API compares names more fully
(NFKC, Unicode case folding: syncd.names); this index is the database's backstop for any
writer. SQLite's lower() folds ASCII letters only; PostgreSQL's follows the database's
collation.

Existing rows are not renamed. If two catalogs of one type and version already have names
that differ only in case (say `EESSI` and `eessi`, both 2023.06), the index cannot be built:
the upgrade stops before changing anything, names each such group (name, version, type,
uuid) and leaves the database at revision 0008. Delete or rename all but one of each group
(DELETE or PATCH through the API, which still runs at 0008), then run `syncd migrate` again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_catalog_lower_name_version_type"


def _collisions() -> list[str]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT c.name, c.version, c.catalog_type, c.uuid FROM catalog c "
            "JOIN (SELECT lower(name) AS key, version, catalog_type FROM catalog "
            "GROUP BY lower(name), version, catalog_type HAVING count(*) > 1) d "
            "ON lower(c.name) = d.key AND c.version = d.version "
            "AND c.catalog_type = d.catalog_type "
            "ORDER BY lower(c.name), c.version, c.catalog_type, c.name"
        )
    )
    return [f"{name!r} {version} ({kind}, uuid {uuid})" for name, version, kind, uuid in rows]


def upgrade() -> None:
    collisions = _collisions()
    if collisions:
        raise RuntimeError(
            "Migration 0009 makes catalog names case-insensitive, but these catalogs have "
            "names that differ only in case at the same version and type: "
            + "; ".join(collisions)
            + ". Delete or rename all but one of each, then run `syncd migrate` again "
            "(nothing was changed; the database stays at revision 0007)."
        )
    op.create_index(
        INDEX, "catalog", [sa.text("lower(name)"), "version", "catalog_type"], unique=True
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="catalog")
