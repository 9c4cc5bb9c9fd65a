"""An offering page on PostgreSQL: one catalog and stored-facet filters (the portal's
`catalog_uuid` + `cpu_family` + `cpu_microarchitecture`) in an order an index serves.

matched_page's CTE read every package's sort keys to find the catalog's (12,057 for
EESSI's 3,144), then sorted the matches for a 25-row page: ~4.5 ms. Here the count is
the catalog's range of ix_package_catalog_id merged with the facet ranges (migration
0023; ~2 ms) and the page is the planner's walk of the ordering's index with the
catalog check and a facet probe per row, stopping when the page is full (~0.5 ms).

The walk reads about page_end * packages / matches rows: for a catalog with few matches
(a Spack offering: no CPU facets at all) it read all 12,057 packages and probed 8,913 of
them (23 ms). So the statement holds both pages, each gated by the count, which
PostgreSQL computes once (a CTE read twice) before either runs: the walk while it reads
at most about a quarter of the matches' number of rows (matches^2 >= WALK * page_end *
packages), else matched_page's sort of the matches (a MATERIALIZED CTE, so the planner
cannot turn it back into a walk); neither when nothing matches. A gate is a one-time
filter: the branch not taken is never executed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, union_all

from syncd.api.matched_page import PAGE_END, matched_ids
from syncd.api.pagination import page_bound
from syncd.db.tables import Catalog

WALK = 4  # walk while it reads about matches / WALK rows or fewer (see the module's doc)
# The orderings (o=) an index serves, so that the walk stops at the page: the default
# (ix_package_name_lower) and name (ix_package_name). Not modified: the planner sorted
# all matches then (as matched_page does) and counting apart made that slower (0.85x).
WALKABLE: frozenset[tuple[str, ...]] = frozenset({(), ("name",), ("-name",)})


def walkable(o: Sequence[str] | None) -> bool:
    return tuple(o or ()) in WALKABLE


def offering_page(
    base: Select,
    narrow: Select,
    where: Sequence[ColumnElement[bool]],
    ordering: Sequence[Any],
    id_column: Any,
    count: Select,
) -> tuple[Select, Select] | None:
    """(page query, count query) as matched_page's, for `count` (a SELECT of the exact
    number of rows `where` matches, labelled `n`); None where matched_page gives None.
    The matches are chosen from `narrow` (the FROM `where` and `ordering` need, no more:
    each join is planned for each way to the page, and the planning of a statement not yet
    prepared is part of every first request), the page's rows read from `base`."""
    # Written into the statement, not bound (pagination.page_bound): with the LIMIT unknown,
    # the generic plan of the prepared statement expected 10% of the estimated matches per
    # branch and cost more than the custom plans, so PostgreSQL planned every execution anew
    # (~1.7 ms).
    end = page_bound(PAGE_END)
    found = matched_ids(narrow, where, ordering, id_column, materialized=True, end=end)
    if found is None:
        return None
    sort, _ = found
    counted = count.cte("counted")
    n = select(counted.c.n).scalar_subquery()
    packages = select(func.coalesce(func.sum(Catalog.package_count), 0)).scalar_subquery()
    walk = n * n >= packages * end * WALK  # bigint first: no integer overflow
    walked = (
        narrow.with_only_columns(id_column.label("id_"))
        .where(*where, walk)
        .order_by(*ordering)
        .limit(end)
    )
    sorted_ = sort.where(~walk, n > 0)
    page_ids = union_all(walked, sorted_).subquery("page_ids")
    page = base.join(page_ids, page_ids.c.id_ == id_column).order_by(*ordering)
    return page, select(counted.c.n)
