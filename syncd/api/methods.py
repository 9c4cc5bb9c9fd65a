"""Which methods a URL supports, answered as Django REST framework answers them.

Django resolves a URL to one view before DRF dispatches on the method, so the first route
whose path matches owns the URL: a method it does not serve is a 405 whose `Allow` lists
every method it does serve (GET .../import_catalog/ is a 405 "Allow: POST, OPTIONS", not the
object route's 404). Starlette instead tries every route for path and method together and
lists only one route's methods. OPTIONS is a 200 with `Allow` and DRF's metadata body
({"name", "description", "renders", "parses"}), behind the same authentication as a read.

`install_methods(app)` reads the app's routes once every router is included, adds the OPTIONS
routes and `AllowedMethodsMiddleware`, which answers the 405s before routing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from syncd.api.deps import Reader

# DRF lists allowed methods in this order (django.views.View.http_method_names).
METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
MEDIA_TYPES = ["application/json"]  # the only type rendered and parsed


@dataclass(frozen=True)
class UrlMethods:
    """One URL template and what it serves."""

    path: str
    regex: re.Pattern[str]
    methods: frozenset[str]
    name: str
    description: str

    @property
    def allow(self) -> str:
        return ", ".join(m for m in METHOD_ORDER if m in self.methods)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "renders": MEDIA_TYPES,
            "parses": MEDIA_TYPES,
        }


def _view_name(path: str) -> str:
    """DRF-like: "<Resource> List" / "<Resource> Instance", an action's pretty name
    ("Import catalog"), else the last segment's."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "api" and parts[1].startswith("marketplace-"):
        resource = parts[1].replace("-", " ").title()
        rest = parts[2:]
        if not rest:
            return f"{resource} List"
        if rest[-1].startswith("{"):
            return f"{resource} Instance"
        return rest[-1].replace("_", " ").capitalize()
    return parts[-1].replace("_", " ").capitalize() if parts else "Api Root"


def url_table(routes: Sequence[BaseRoute]) -> list[UrlMethods]:
    """The app's URL templates in routing order, each with the union of its routes' methods.
    Routes serving any method (no method list) are left out: they own nothing here."""
    found: dict[str, tuple[re.Pattern[str], set[str], list[str]]] = {}
    # FastAPI keeps included routers as branches; this walks them in routing order.
    for route in iter_route_contexts(routes):
        regex = getattr(route, "path_regex", None)
        if not route.path or not route.methods or regex is None:
            continue
        _, methods, texts = found.setdefault(route.path, (regex, set(), []))
        methods.update(route.methods)
        texts.append(getattr(route, "summary", None) or "")
    return [
        UrlMethods(
            path=path,
            regex=regex,
            methods=frozenset(methods | {"OPTIONS"}),
            name=_view_name(path),
            description=next((t for t in texts if t), ""),
        )
        for path, (regex, methods, texts) in found.items()
    ]


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _owner(table: Sequence[UrlMethods], path: str) -> UrlMethods | None:
    return next((url for url in table if url.regex.match(path)), None)


class AllowedMethodsMiddleware:
    def __init__(self, app: ASGIApp, table: Sequence[UrlMethods]) -> None:
        self.app = app
        self.table = table
        # The owner of each template without a parameter (the lists), found once: a scan
        # of every template's regex per request was a few percent of a list read's CPU.
        self.fixed = {url.path: _owner(table, url.path) for url in table if "{" not in url.path}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = _route_path(scope)
            owner = self.fixed.get(path) or _owner(self.table, path)
            if owner is not None and scope["method"] not in owner.methods:
                body = {"detail": f'Method "{scope["method"]}" not allowed.'}
                answer = JSONResponse(body, status_code=405, headers={"Allow": owner.allow})
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _options_endpoint(url: UrlMethods) -> Callable[..., Awaitable[Response]]:
    async def options(_reader: Reader) -> Response:
        return JSONResponse(url.metadata(), headers={"Allow": url.allow})

    return options


def install_methods(app: FastAPI) -> None:
    """OPTIONS on every URL of `app` and the 405 rule; call once every router is included.
    The OPTIONS routes come in routing order, so the URL that owns a path answers it."""
    table = url_table(app.routes)
    for url in table:
        app.add_api_route(
            url.path, _options_endpoint(url), methods=["OPTIONS"], include_in_schema=False
        )
    app.add_middleware(AllowedMethodsMiddleware, table=table)
