"""The package list's read model: each package's embedded versions (with their targets) and
extensions, rendered when a sync or a hand write changes them, so that a list page only
concatenates stored JSON (issue 25, item 1).

The contract: `render_packages(conn, catalog_id, package_ids)` in the writer's transaction
(None: every package of the catalog); `read_fragments(conn, package_ids)` for a page, which
renders on the fly whatever is missing or of an older FORMAT; `fill_stale(engine)` after
`syncd migrate`. `refresh_read_model` does both kinds of derived data at once: the
fragments and the filter values and search text of syncd/readmodel/facets.py (issue 24).
"""

from collections.abc import Collection

from sqlalchemy import Connection

from syncd.readmodel.facets import refresh_facets
from syncd.readmodel.fragments import FORMAT, Fragment
from syncd.readmodel.store import (
    fill_stale,
    read_fragments,
    render_packages,
    stale_count,
    with_parents,
)


def refresh_read_model(
    conn: Connection, catalog_id: int, package_ids: Collection[int] | None
) -> None:
    """Everything derived from the packages `package_ids` of `catalog_id` (None: all of
    them), in the writer's transaction."""
    render_packages(conn, catalog_id, package_ids)
    refresh_facets(conn, catalog_id, package_ids)


__all__ = [
    "FORMAT",
    "Fragment",
    "fill_stale",
    "read_fragments",
    "refresh_facets",
    "refresh_read_model",
    "render_packages",
    "stale_count",
    "with_parents",
]
