"""Waldur's pagination and field selection: bare JSON arrays, page/page_size, X-Result-Count,
a Link header as Waldur's LinkHeaderPagination writes it, and `?field=a&field=b`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request, Response
from pydantic import BeforeValidator
from sqlalchemy import BindParameter, Integer, Row, Select, bindparam, func, select
from sqlalchemy.orm import Session

from syncd.api.errors import invalid_page
from syncd.api.matched_page import PAGE_END
from syncd.api.snapshot import read_snapshot

RESULT_COUNT = "result_count_"  # the label of the count read along with a page
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 300
MAX_OFFSET = 10_000_000


# The page parameters of every list route.
PageParam = Annotated[int | None, Query(ge=1, description="1-based page number")]


def _page_size_or_default(value: object) -> object:
    # DRF's pager reads a page_size that is not an integer as "not given" (the default),
    # where FastAPI would answer 400.
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return value


PageSizeParam = Annotated[
    int | None,
    BeforeValidator(_page_size_or_default),
    Query(description="Objects per page (default 10, max 300)"),
]


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    count: int

    @property
    def num_pages(self) -> int:
        return max(1, math.ceil(self.count / self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def page_size(value: int | None) -> int:
    # DRF: a missing or non-positive page_size is the default; a large one is capped.
    if value is None or value < 1:
        return DEFAULT_PAGE_SIZE
    return min(value, MAX_PAGE_SIZE)


def make_page(number: int | None, size: int | None, count: int) -> Page:
    page = Page(number=1 if number is None else number, size=page_size(size), count=count)
    if page.number < 1 or page.number > page.num_pages:
        raise invalid_page()
    return page


def count_rows(session: Session, query: Select, count_query: Select | None = None) -> int:
    """The rows of `query`; `count_query` (a SELECT of that number) when the caller knows a
    cheaper way than counting the query itself."""
    if count_query is None:
        count_query = select(func.count()).select_from(query.order_by(None).subquery())
    return int(session.connection().execute(count_query).scalar_one())


def read(
    session: Session, query: Select, params: dict[str, Any] | None = None
) -> Sequence[Row[Any]]:
    """The rows of a SELECT of columns (no ORM entities) on the session's connection: Core
    execution, without the ORM's per-statement layer."""
    return session.connection().execute(query, params).all()


def page_bound(name: str) -> BindParameter[int]:
    """A page's LIMIT or OFFSET, written into the SQL at execution (SQLAlchemy's
    literal_execute; the compiled form stays cached). Bound as a parameter, the page of an
    unfiltered list was re-planned by PostgreSQL at every execution of its prepared
    statement: with the LIMIT unknown the generic plan looks dearer than the custom ones,
    so it is never chosen, and planning (0.4-0.5 ms) cost three times the execution. With
    no parameter left, the prepared statement is planned once per connection (a text per
    page size and number: psycopg prepares the ones used often)."""
    return bindparam(name, type_=Integer, literal_execute=True)


@functools.lru_cache(maxsize=64)
def _page_statement(query: Select, count_query: Select | None) -> Select:
    """`query` with its count as the last column, LIMIT and OFFSET bound at execution. Built
    once for a query that is built once (an unfiltered list): SQLAlchemy then finds its
    compiled form without recomputing the statement's cache key on every request."""
    total = count_query.scalar_subquery() if count_query is not None else func.count().over()
    return (
        query.add_columns(total.label(RESULT_COUNT))
        .limit(page_bound("page_limit_"))
        .offset(page_bound("page_offset_"))
    )


def _page_url(request: Request, base: str, number: int | None) -> str:
    """The request's URL on page `number`; `None` drops the page parameter (page 1, as DRF
    writes a first or previous link to page 1)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    if number is not None:
        params.append(("page", str(number)))
    query = f"?{urlencode(params)}" if params else ""
    return f"{base}{request.url.path}{query}"


def link_header(request: Request, base: str, page: Page) -> str:
    """Waldur's LinkHeaderPagination: `first` (no page parameter) and `last` always, `prev` and
    `next` where they exist, in the order first, prev, next, last."""
    last = page.num_pages if page.num_pages > 1 else None
    links: list[tuple[str, int | None]] = [("first", None)]
    if page.number > 1:
        links.append(("prev", page.number - 1 if page.number > 2 else None))
    if page.number < page.num_pages:
        links.append(("next", page.number + 1))
    links.append(("last", last))
    return ", ".join(f'<{_page_url(request, base, n)}>; rel="{rel}"' for rel, n in links)


def list_headers(request: Request, base: str, page: Page) -> dict[str, str]:
    return {"X-Result-Count": str(page.count), "Link": link_header(request, base, page)}


def select_fields(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    """Only the keys named by `?field=`; every key when none is named, and `{}` when only
    unknown ones are (as Waldur answers)."""
    wanted = request.query_params.getlist("field")
    if not wanted:
        return item
    return {key: value for key, value in item.items() if key in wanted}


class RawJson:
    """JSON text placed into an answer as it is (a package's stored list fragment)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


# Where a RawJson goes, json.dumps first writes this string; no stored text holds a NUL (the
# sync's NUL rule), and the token makes a chance match of the rest impossible in practice.
_RAW_MARK = f"\x00{secrets.token_hex(8)}:"
_RAW_PLACE = re.compile(re.escape(json.dumps(_RAW_MARK)[:-1]) + r'(\d+)"')


def encode_json(content: Any) -> str:
    raws: list[str] = []

    def place(value: Any) -> str:
        if isinstance(value, RawJson):
            raws.append(value.text)
            return f"{_RAW_MARK}{len(raws) - 1}"
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=place)
    if not raws:
        return text
    return _RAW_PLACE.sub(lambda match: raws[int(match[1])], text)


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    # Rendered here rather than through response_model validation: the list pages are the hot
    # path and their dicts are already in wire form.
    body = encode_json(content).encode("utf-8")
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


def headers_only(headers: dict[str, str], status_code: int = 200) -> Response:
    """A HEAD answer whose GET body was never rendered: the GET's status and headers, no
    body, and no Content-Length (0 would be a claim about the GET's body, which is not
    known; HTTP lets a HEAD answer leave it out)."""
    response = Response(status_code=status_code, headers=headers)
    del response.headers["content-length"]
    return response


def _plausible(number: int | None, size: int | None) -> bool:
    """A page number that may exist (a wild one is refused after counting, never sent to the
    database as an OFFSET it may not represent)."""
    return number is None or 1 <= number * page_size(size) <= MAX_OFFSET


def paginated(
    request: Request,
    session: Session,
    query: Select,
    *,
    base: str,
    number: int | None,
    size: int | None,
    render: Callable[[list[Any]], Iterable[dict[str, Any]]],
    count_query: Select | None = None,
    count_in_page: bool = False,
) -> Response:
    """One page of `query` rendered by `render` (which gets the page's rows at once, so it
    can load related data with one query per page rather than one per row).

    The count comes from `count_query` when given (a cheaper way the caller knows), else
    from counting `query`. With `count_query` or `count_in_page` (a small table: COUNT(*)
    OVER () costs nothing) the page and its count are read with one statement; a second
    one is needed only when the page is empty."""
    # One snapshot for the count, the page and what render() reads for it: in autocommit a
    # sync committing between them gave a count of one catalog and rows of the next.
    read_snapshot(session)
    one_statement = count_query is not None or count_in_page
    if request.method == "HEAD" or not one_statement or not _plausible(number, size):
        page = make_page(number, size, count_rows(session, query, count_query))
        headers = list_headers(request, base, page)
        if request.method == "HEAD":
            session.close()
            return headers_only(headers)
        params = {PAGE_END: page.offset + page.size}  # a matched_page query's (else unused)
        rows = list(read(session, query.limit(page.size).offset(page.offset), params))
    else:
        wanted = Page(number=1 if number is None else number, size=page_size(size), count=0)
        statement = _page_statement(query, count_query)
        params = {
            "page_limit_": wanted.size,
            "page_offset_": wanted.offset,
            PAGE_END: wanted.offset + wanted.size,
        }
        rows = list(read(session, statement, params))
        count = rows[0][-1] if rows else count_rows(session, query, count_query)
        page = make_page(number, size, int(count))
        headers = list_headers(request, base, page)
    items = [select_fields(request, item) for item in render(rows)]
    session.close()  # end the read transaction here, in the worker thread
    return json_response(items, headers=headers)
