"""The lean path of the hot list routes (issue 16): an ASGI middleware, inside the response
cache, the allowed methods and the security headers, that answers an anonymous GET or HEAD
of the catalog, package or version list without FastAPI's routing and dependency solving.

It reads the query with a parser built once per route (params.py) and answers in a small
thread pool of its own (see LeanListMiddleware): a page read by one statement (catalogs.py,
packages.py, versions.py; reads.py) and rendered by the route's own code, or the route's
own function where it reads more: the answer is the route's, byte for byte. Whatever it
does not read exactly (an invalid value, `?field=`, an Authorization header, reads that
need a token) goes on to the FastAPI route unchanged. An error raised while answering is
answered by the app's own exception handlers, as the route's would be.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from syncd.api.deps import ApiContext
from syncd.api.lean.catalogs import catalog_filters, catalog_page
from syncd.api.lean.packages import package_items_page
from syncd.api.lean.params import ListParams, ListParser
from syncd.api.lean.threads import ReadThreads
from syncd.api.lean.versions import version_items_page
from syncd.api.software_filters import PackageFilters, VersionFilters

Answer = Callable[[Request, ApiContext, ListParams], Response]


@dataclass(frozen=True)
class LeanRoute:
    parser: ListParser
    answer: Answer


def lean_routes() -> dict[str, LeanRoute]:
    packages = LeanRoute(ListParser(PackageFilters), package_items_page)
    versions = LeanRoute(ListParser(VersionFilters), version_items_page)
    catalogs = LeanRoute(ListParser(catalog_filters()), catalog_page)
    return {
        "/api/marketplace-software-catalogs/": catalogs,
        "/api/marketplace-software-packages/": packages,
        "/api/marketplace-software-versions/": versions,
    }


# Readers at once: a few per core (the database's too) keep both busy; more only queue.
LEAN_THREADS = 8

_READS = frozenset({"GET", "HEAD"})


class LeanListMiddleware:
    """`threads` run the answers (each a synchronous database read): a few threads of
    their own rather than anyio's pool of SYNCD_API_THREADS. anyio's hop (limiter, cancel
    scope, worker queue) cost 33-38 us of CPU per call, run_in_executor's 15 us (50 calls
    at once, 2 cores), threads.py's less again; and 40 threads reading at once on a
    machine of a few cores only queue in PostgreSQL and for the GIL. Their connections
    come from the same engine pool, whose overflow covers them beyond the routes' threads
    (app.py)."""

    def __init__(
        self, app: ASGIApp, threads: ReadThreads, routes: dict[str, LeanRoute] | None = None
    ) -> None:
        self.app = app
        self.threads = threads
        self.routes = lean_routes() if routes is None else routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _READS:
            await self.app(scope, receive, send)
            return
        route = self.routes.get(scope["path"])
        if route is None or scope.get("root_path") or _has_authorization(scope):
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        ctx: ApiContext = app.state.ctx
        params = route.parser.parse(scope["query_string"]) if ctx.settings.anonymous_read else None
        if params is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.threads.run(functools.partial(route.answer, request, ctx, params))
        except Exception as exc:
            response = await _handled(app, request, exc)
        await response(scope, receive, send)


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])


async def _handled(app: Any, request: Request, exc: Exception) -> Response:
    """The answer of the app's handler for `exc` (ApiError, a database error...), found as
    Starlette's ExceptionMiddleware finds it; re-raised when there is none (a 500)."""
    for cls in type(exc).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None and cls is not Exception:
            response: Response = await handler(request, exc)
            return response
    raise exc
