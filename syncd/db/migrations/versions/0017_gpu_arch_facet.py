"""package_facet: the gpu_arch facet

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-04

The package list's gpu_arch filter scanned every target's GPU list per request (a 300 ms p99
on full EESSI + Spack); syncd/readmodel/facets.py now also stores each package's GPU
architectures as `gpu_arch` facets. This fills them for the catalogs already stored, with the
statement facets.py runs (spelt out here so that later changes there do not change it).
(Revises 0015: 0016 is being written on another branch; the lead re-points it at merge.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRESQL = """
INSERT INTO package_facet (kind, value, package_id)
SELECT DISTINCT 'gpu_arch', element.value #>> '{}', version.package_id
FROM target JOIN version ON version.id = target.version_id
JOIN jsonb_array_elements(CAST(target.gpu_architectures AS JSONB)) AS element ON true
WHERE jsonb_array_length(CAST(target.gpu_architectures AS JSONB)) > 0
  AND jsonb_typeof(element.value) = 'string' AND length(element.value #>> '{}') <= 200
"""
SQLITE = """
INSERT INTO package_facet (kind, value, package_id)
SELECT DISTINCT 'gpu_arch', element.value, version.package_id
FROM target JOIN version ON version.id = target.version_id
JOIN json_each(target.gpu_architectures) AS element
WHERE json_array_length(target.gpu_architectures) > 0
  AND element.type = 'text' AND length(element.value) <= 200
"""


def upgrade() -> None:
    bind = op.get_bind()
    # 0014 fills the facets with today's facets.py, which writes these rows too.
    bind.execute(sa.text("DELETE FROM package_facet WHERE kind = 'gpu_arch'"))
    bind.execute(sa.text(POSTGRESQL if bind.dialect.name == "postgresql" else SQLITE))


def downgrade() -> None:
    op.execute("DELETE FROM package_facet WHERE kind = 'gpu_arch'")
