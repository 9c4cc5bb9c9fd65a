"""The catalog list on the lean path: its filters are the route's own keyword parameters, so
the parser's model is made once from the route function's signature (the same annotations
FastAPI reads). A page and its count are the route's own statement (catalog_query, counted
along with the page), read in autocommit without a Session (reads.py) and rendered by the
route's representation.catalog and encoder; HEAD, a page that cannot exist and an empty page
are answered by the route function, called with what the parser read."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from pydantic import BaseModel, create_model
from starlette.requests import Request
from starlette.responses import Response

from syncd.api import representation
from syncd.api.deps import ApiContext
from syncd.api.lean.params import ListParams
from syncd.api.lean.reads import list_headers, list_urls, read_rows
from syncd.api.matched_page import PAGE_END
from syncd.api.pagination import _page_statement, _plausible, json_response, make_page, page_size
from syncd.api.routes_catalogs import catalog_query, list_catalogs

# The route's parameters that are not filters.
_NOT_FILTERS = frozenset({"request", "ctx", "_reader", "o", "page", "page_size"})


def catalog_filters() -> type[BaseModel]:
    hints = typing.get_type_hints(list_catalogs, include_extras=True)
    fields: dict[str, Any] = {
        name: (hints[name], parameter.default)
        for name, parameter in inspect.signature(list_catalogs).parameters.items()
        if name not in _NOT_FILTERS
    }
    model: type[BaseModel] = create_model("CatalogFilters", **fields)
    return model


def _route(request: Request, ctx: ApiContext, p: ListParams, filters: dict[str, Any]) -> Response:
    return list_catalogs(
        request, ctx, None, **filters, o=p.order, page=p.page, page_size=p.page_size
    )


def catalog_page(request: Request, ctx: ApiContext, p: ListParams) -> Response:
    filters = {name: getattr(p.filters, name) for name in type(p.filters).model_fields}
    if request.method == "HEAD" or not _plausible(p.page, p.page_size):
        return _route(request, ctx, p, filters)
    size = page_size(p.page_size)
    offset = ((p.page or 1) - 1) * size
    query = catalog_query(**filters, o=p.order)
    statement = _page_statement(query, None)
    params = {"page_limit_": size, "page_offset_": offset, PAGE_END: offset + size}
    # The unfiltered list's query is built once: catalog_query() returns the same object.
    rows = read_rows(ctx.engine, statement, params, once=query is catalog_query())
    if not rows:  # empty or past the end: the route counts apart and answers
        return _route(request, ctx, p, filters)
    base, url = list_urls(ctx, request)
    page = make_page(p.page, p.page_size, int(rows[0][-1]))
    items = [representation.catalog(base, row) for row in rows]
    return json_response(items, headers=list_headers(url, p.pairs, page))
