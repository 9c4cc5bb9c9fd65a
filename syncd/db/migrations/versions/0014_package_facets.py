"""package_facet and package_search: filter values and search text derived at sync time

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

The portal's filtered lists (cpu_family, cpu_microarchitecture, has_gpu, toolchain_name,
query) scanned versions and targets per request; these tables hold what they match, written
by syncd/readmodel/facets.py in the writer's transaction. No pg_trgm index on the search
text: measured, the planner does not pick it for short queries and it tripled the cost of
writing the text (docs/performance.md). Existing catalogs are filled here, so no resync is
needed.
(Revises 0012: 0013 is being written on another branch; the lead re-points it at merge.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "package_facet",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("package_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"], ["package.id"], name="fk_package_facet_package_id_package",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "value", "package_id", name="pk_package_facet"),
    )  # fmt: skip
    op.create_index("ix_package_facet_package_id", "package_facet", ["package_id"])
    op.create_table(
        "package_search",
        sa.Column("package_id", ID, nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"], ["package.id"], name="fk_package_search_package_id_package",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("package_id", name="pk_package_search"),
    )  # fmt: skip
    # The package table's `o=name` / `o=-name`: without it every such page sorted all packages.
    op.create_index("ix_package_name", "package", ["name"])
    bind = op.get_bind()
    from syncd.readmodel.facets import refresh_facets

    refresh_facets(bind, None, None)


def downgrade() -> None:
    op.drop_index("ix_package_name", table_name="package")
    op.drop_table("package_search")
    op.drop_table("package_facet")
