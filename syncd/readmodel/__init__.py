"""The package list's read model: each package's embedded versions (with their targets) and
extensions, rendered when a sync or a hand write changes them, so that a list page only
concatenates stored JSON (issue 25, item 1).

The contract: `render_packages(conn, catalog_id, package_ids)` in the writer's transaction
(None: every package of the catalog); `read_fragments(conn, package_ids)` for a page, which
renders on the fly whatever is missing or of an older FORMAT; `fill_stale(engine)` after
`syncd migrate`.
"""

from syncd.readmodel.fragments import FORMAT, Fragment
from syncd.readmodel.store import (
    fill_stale,
    read_fragments,
    render_packages,
    stale_count,
    with_parents,
)

__all__ = [
    "FORMAT",
    "Fragment",
    "fill_stale",
    "read_fragments",
    "render_packages",
    "stale_count",
    "with_parents",
]
