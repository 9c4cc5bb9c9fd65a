"""The package list from stored items (syncd/readmodel/items.py): a page is its packages'
stored texts joined, the catalog's fields spliced in and the URLs' base put in once.

The rows come from the route's own query and count (package_list.package_list_query: its
filters, orderings and conditions, the count of a filtered list computed with its page), its
columns swapped for the stored texts: a page and its count are one statement, so it needs
no read transaction. A page with
an item of an older FORMAT (or none), an empty page past the first, and HEAD are answered by
the route's function (routes_software.package_page), which renders on the fly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from starlette.requests import Request
from starlette.responses import Response

from syncd.api.deps import ApiContext
from syncd.api.filters import parse_ordering
from syncd.api.lean.params import ListParams
from syncd.api.lean.reads import list_headers, list_urls, read_rows
from syncd.api.matched_page import PAGE_END
from syncd.api.package_list import built_once, package_list_query
from syncd.api.pagination import _plausible, count_rows, make_page, page_bound, page_size
from syncd.api.routes_software import package_page
from syncd.api.snapshot import read_snapshot
from syncd.api.software_filters import PACKAGE_ORDERING, PackageFilters
from syncd.api.software_queries import PACKAGE_DEFAULT_ORDER, stored_count_query
from syncd.db.tables import Catalog, Package, PackageReadModel
from syncd.readmodel import FORMAT
from syncd.readmodel.items import catalog_fields, page_item, with_base

_COUNT = "result_count_"


def _items(query: Select, count_query: Select | None, ordering: Sequence[Any]) -> Select:
    """The page of `query` (ordered by `ordering`) as its stored texts. The page's ids are
    chosen first, from the narrow rows the query reads: joined before the LIMIT, the stored
    texts (kilobytes per package) were carried through the sort of a whole list ordered by
    a column no index serves (`o=-modified`: 42 ms instead of 3)."""
    page_ids = (
        query.with_only_columns(Package.id.label("page_id_"), maintain_column_froms=True)
        .limit(page_bound("page_limit_"))
        .offset(page_bound("page_offset_"))
        .subquery("page_")
    )
    columns: list[Any] = [
        PackageReadModel.format,
        PackageReadModel.item_head,
        PackageReadModel.item_tail,
        PackageReadModel.versions,
        Catalog.name,
        Catalog.version,
        Catalog.catalog_type,
    ]
    if count_query is not None:
        columns.append(count_query.scalar_subquery().label(_COUNT))
    return (
        select(*columns)
        .select_from(Package)
        .join(page_ids, page_ids.c.page_id_ == Package.id)
        .join(Catalog, Catalog.id == Package.catalog_id)
        .outerjoin(PackageReadModel, PackageReadModel.package_id == Package.id)
        .order_by(*ordering)
    )


@functools.lru_cache(maxsize=576)
def _items_once(query: Select, count_query: Select, ordering: tuple[Any, ...]) -> Select:
    """Built once per ordering of the unfiltered list (package_query and stored_count_query
    return the same objects then) and per offering page (package_list.built_once):
    SQLAlchemy finds its compiled form at once."""
    return _items(query, count_query, ordering)


def _ordering(order: list[str] | None) -> tuple[Any, ...]:
    """The list's ORDER BY, as package_query writes it: the page's rows in the page's order."""
    return _order_of(tuple(order or ()))


@functools.lru_cache(maxsize=256)
def _order_of(order: tuple[str, ...]) -> tuple[Any, ...]:
    return (*(parse_ordering(list(order), PACKAGE_ORDERING) or PACKAGE_DEFAULT_ORDER), Package.id)


def _texts(rows: list[Any]) -> list[str] | None:
    texts = []
    for row in rows:
        if row.format != FORMAT or row.item_head is None or row.item_tail is None:
            return None
        fields = catalog_fields(row.name, row.version, row.catalog_type)
        texts.append(page_item(row.item_head, fields, row.item_tail, row.versions))
    return texts


def _rows(ctx: ApiContext, p: ListParams) -> tuple[list[Any], int | None]:
    """The page's rows and the list's count (None: unknown, the page being empty), read by
    one statement (its own snapshot: no transaction to begin and end) from the route's own
    query and count (package_list.package_list_query)."""
    assert isinstance(p.filters, PackageFilters)
    size = page_size(p.page_size)
    offset = ((p.page or 1) - 1) * size
    params = {"page_limit_": size, "page_offset_": offset, PAGE_END: offset + size}
    query, count_query = package_list_query(ctx.engine.dialect.name, p.filters, p.order)
    ordering = _ordering(p.order)
    if count_query is None:  # (not returned today; counted apart in one snapshot if it is)
        with ctx.session_factory() as session:
            read_snapshot(session)
            count = count_rows(session, query)
            make_page(p.page, p.page_size, count)  # an invalid page: the route's 404
            statement = _items(query, None, ordering)
            return list(session.connection().execute(statement, params)), count
    unfiltered = stored_count_query(p.filters, "package_count") is not None and p.order is None
    once = unfiltered or built_once(ctx.engine.dialect.name, p.filters, p.order)
    statement = (
        _items_once(query, count_query, ordering) if once else _items(query, count_query, ordering)
    )
    rows = read_rows(ctx.engine, statement, params, once=once)
    return rows, (int(rows[0][-1]) if rows else None)


def package_items_page(request: Request, ctx: ApiContext, p: ListParams) -> Response:
    filters = p.filters
    assert isinstance(filters, PackageFilters)
    if request.method == "HEAD" or not _plausible(p.page, p.page_size):
        return package_page(request, ctx, filters, p.order, p.page, p.page_size)
    rows, count = _rows(ctx, p)
    texts = _texts(rows) if rows else None
    if not rows and (p.page or 1) == 1:
        # The first page of a list nothing matches: its count is 0, nothing to ask. Sent to
        # the route, the first such page in a process paid the route's statements' first
        # compilation (the portal bench's ~140 ms offering + query p99).
        texts, count = [], 0
    if texts is None or count is None:
        return package_page(request, ctx, filters, p.order, p.page, p.page_size)
    base, url = list_urls(ctx, request)
    page = make_page(p.page, p.page_size, count)
    body = with_base("[" + ",".join(texts) + "]", base).encode("utf-8")
    return Response(body, headers=list_headers(url, p.pairs, page), media_type="application/json")
