"""A filtered list's page and its exact count from one evaluation of its filters.

`paginated` counted a filtered list with one statement and read its page with another, and
each evaluated the filters: two scans of the search text for a `query`, two walks of the
facets for an offering page. Here the filters run once, in a CTE of the matching ids and
their sort keys; the count reads the CTE and the page is the CTE's first ids by those keys,
joined back to the full rows. A CTE referenced twice is materialized (PostgreSQL 12+ and
SQLite 3.35+ both do so without being told), so the filters are evaluated once.

The page's ids are the first `page_end_` (offset + page size) of the CTE; paginated's own
ORDER BY ... LIMIT page_limit_ OFFSET page_offset_ then picks the page from those rows. The
two orders are the same expressions, ties broken by the id, so the rows are the ones the
uncomposed statement returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import CTE, ColumnElement, Integer, Select, bindparam, func, select
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

PAGE_END = "page_end_"  # bound by paginated: offset + page size


def _key(clause: Any) -> tuple[ColumnElement[Any], bool] | None:
    """(expression, descending) of an ORDER BY clause; None for any other modifier (NULLS
    FIRST/LAST, collations): not composed then."""
    if not isinstance(clause, UnaryExpression):
        return clause, False
    if clause.modifier is operators.desc_op:
        return clause.element, True
    if clause.modifier is operators.asc_op:
        return clause.element, False
    return None


def matched_page(
    base: Select,
    where: Sequence[ColumnElement[bool]],
    ordering: Sequence[Any],
    id_column: Any,
) -> tuple[Select, Select] | None:
    """(page query, count query) of `base` (the list's columns and joins, no WHERE) filtered
    by `where` and ordered by `ordering`, which must end with `id_column` (a unique key);
    None when an ordering clause cannot be carried through the CTE."""
    found = matched_ids(base, where, ordering, id_column)
    if found is None:
        return None
    first, matched = found
    page_ids = first.subquery("page_ids")
    page = base.join(page_ids, page_ids.c.id_ == id_column).order_by(*ordering)
    return page, select(func.count()).select_from(matched)


def matched_ids(
    base: Select,
    where: Sequence[ColumnElement[bool]],
    ordering: Sequence[Any],
    id_column: Any,
    materialized: bool = False,
    end: Any = None,
) -> tuple[Select, CTE] | None:
    """(the first `page_end_` matching ids, as `id_`, in the list's order; the CTE of the
    matching ids and sort keys) for matched_page; None as there. `materialized`: said so
    (PostgreSQL inlines a CTE read once, and may then plan it as any other subquery). `end`:
    the page's end as the caller binds it (default: bound as `page_end_`)."""
    keys = [_key(clause) for clause in ordering]
    if any(key is None for key in keys):
        return None
    labelled = [expr.label(f"k{i}") for i, (expr, _) in enumerate(k for k in keys if k)]
    matched = base.with_only_columns(id_column.label("id_"), *labelled).where(*where).cte("matched")
    if materialized:
        matched = matched.prefix_with("MATERIALIZED")
    order = [
        matched.c[f"k{i}"].desc() if descending else matched.c[f"k{i}"].asc()
        for i, (_, descending) in enumerate(k for k in keys if k)
    ]
    if end is None:
        end = bindparam(PAGE_END, type_=Integer)
    first = select(matched.c.id_).order_by(*order).limit(end)
    return first, matched
