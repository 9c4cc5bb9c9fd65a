"""What the lean answers share: one statement read in autocommit straight from the engine's
pool, and the list headers built with the query string encoded once.

A page read by one statement is its own snapshot, so it needs neither a read transaction
(BEGIN, ROLLBACK: two round trips) nor a Session: a Session's connection and close were a
fifth of a package page's CPU in the server (cProfile, the lean answer alone), the pool's
connection itself a small part of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, Executable
from starlette.requests import Request

from syncd.api.deps import ApiContext
from syncd.api.lean.pg_rows import read_text, text_of
from syncd.api.pagination import Page

_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def read_rows(
    engine: Engine, statement: Executable, params: dict[str, Any], *, once: bool = False
) -> list[Any]:
    """The rows of one statement, in autocommit; the connection is back in the pool when
    this returns (before the page is rendered). Rows read like the ORM objects the
    representation functions take (software_queries.columns), hence Any. `once`: the
    statement is built once (the same object every time), so on PostgreSQL its text is
    compiled once and run by psycopg itself (pg_rows.py)."""
    if once and engine.dialect.name == "postgresql":
        text = text_of(engine, statement, params)
        if text is not None:
            return read_text(engine, text)
    with engine.connect() as conn:
        conn.execution_options(**_AUTOCOMMIT)
        return list(conn.execute(statement, params))


# (base, the list's URL) per request origin and path: a few in practice, but the Host
# header is the client's, so the memo is emptied when it grows past this.
_URLS_KEPT = 256
_urls: dict[tuple[Any, ...], tuple[str, str]] = {}


def list_urls(ctx: ApiContext, request: Request) -> tuple[str, str]:
    """(ctx.base_url(request), the base and the request's path): what every link of the
    answer starts with, computed once per origin and path rather than through Starlette's
    URL objects per request (request.url.path parses the URL it builds)."""
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    key = (
        ctx.settings.public_url,
        scope.get("scheme"),
        tuple(scope.get("server") or ()),  # a list from some servers (a test client)
        host,
        scope.get("root_path"),
        scope.get("app_root_path"),
        scope["path"],
    )
    found = _urls.get(key)
    if found is None:
        base = ctx.base_url(request)
        found = (base, f"{base}{request.url.path}")
        if len(_urls) >= _URLS_KEPT:
            _urls.clear()
        _urls[key] = found
    return found


def list_headers(url: str, pairs: Sequence[tuple[str, str]], page: Page) -> dict[str, str]:
    """pagination.list_headers, the same text, for the list at `url` whose query string
    has `pairs` (the parser's: Starlette's reading): the query string without `page` is
    encoded once for the four links (urlencode of the pairs plus ("page", n) is that text
    plus "&page=n"), not once per link."""
    query = urlencode([(k, v) for k, v in pairs if k != "page"])
    first = f"{url}?{query}" if query else url
    join = f"{first}&page=" if query else f"{url}?page="

    def link(number: int | None) -> str:
        return first if number is None else f"{join}{number}"

    last = page.num_pages if page.num_pages > 1 else None
    links = [f'<{first}>; rel="first"']
    if page.number > 1:
        links.append(f'<{link(page.number - 1 if page.number > 2 else None)}>; rel="prev"')
    if page.number < page.num_pages:
        links.append(f'<{link(page.number + 1)}>; rel="next"')
    links.append(f'<{link(last)}>; rel="last"')
    return {"X-Result-Count": str(page.count), "Link": ", ".join(links)}
