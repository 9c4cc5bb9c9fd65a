"""The catalog list on the lean path: its filters are the route's own keyword parameters, so
the parser's model is made once from the route function's signature (the same annotations
FastAPI reads), and the answer is the route function's, called with what the parser read."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from pydantic import BaseModel, create_model
from starlette.requests import Request
from starlette.responses import Response

from syncd.api.deps import ApiContext
from syncd.api.lean.params import ListParams
from syncd.api.routes_catalogs import list_catalogs

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


def catalog_page(request: Request, ctx: ApiContext, p: ListParams) -> Response:
    filters = {name: getattr(p.filters, name) for name in type(p.filters).model_fields}
    return list_catalogs(
        request, ctx, None, **filters, o=p.order, page=p.page, page_size=p.page_size
    )
