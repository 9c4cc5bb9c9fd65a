"""The package list's read model: each package's embedded versions (with their targets) and
extensions, rendered when a sync or a hand write changes them, so that a list page only
concatenates stored JSON (issue 25, item 1).

The contract: `render_packages(conn, catalog_id, package_ids)` in the writer's transaction
(None: every package of the catalog); `read_fragments(conn, package_ids)` for a page, which
renders on the fly whatever is missing or of an older FORMAT; `fill_stale(engine)` after
`syncd migrate`. `refresh_read_model` does both kinds of derived data at once: the
fragments and the filter values and search text of syncd/readmodel/facets.py (issue 24).
"""

from collections.abc import Collection, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

from syncd.readmodel.facets import refresh_facets
from syncd.readmodel.fragments import FORMAT, Fragment
from syncd.readmodel.pg_render import SORT_MEMORY as _SORT_MEMORY
from syncd.readmodel.sql_store import hold_catalog
from syncd.readmodel.store import (
    fill_stale,
    read_fragments,
    render_packages,
    stale_count,
    with_parents,
)


def refresh_read_model(
    conn: Connection, catalog_id: int, package_ids: Collection[int] | None, *, fresh: bool = False
) -> None:
    """Everything derived from the packages `package_ids` of `catalog_id` (None: all of
    them), in the writer's transaction. `fresh`: the catalog had no package before this
    transaction (its first import), so nothing derived from it is stored: nothing to delete
    (the facets' and search text's deletes of a whole catalog scanned those tables: 70-80 ms
    of a first import)."""
    hold_catalog(conn, catalog_id)
    with _derivation_plans(conn, package_ids is None):
        render_packages(conn, catalog_id, package_ids, fresh=fresh)
        refresh_facets(conn, catalog_id, package_ids, fresh=fresh)


@contextmanager
def _derivation_plans(conn: Connection, whole: bool) -> Iterator[None]:
    """PostgreSQL settings for deriving data in the writer's transaction, undone after.

    No JIT: these statements run once, and compiling their large expressions cost more than
    running them (1.2 s for the items' UPDATE of an EESSI import; the disabled nested loops
    below make every estimate exceed jit_optimize_above_cost). For a whole catalog's data
    (its first import): the rows were just written, so the tables have no statistics for
    them, and the planner, expecting a few rows, joins each of 120,000 targets to its
    version by an index lookup; and their sorts spill to disk."""
    if conn.dialect.name != "postgresql":
        yield
        return
    settings = {"jit": "off"}
    if whole:
        settings |= {"enable_nestloop": "off", "work_mem": _SORT_MEMORY}
    previous = {
        name: conn.execute(text(f"SELECT current_setting('{name}')")).scalar_one()
        for name in settings
    }
    for name, value in settings.items():
        conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
    yield  # (a failure aborts the transaction, which undoes the local settings by itself)
    for name, value in previous.items():
        conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


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
