"""The Atom feeds of what syncs changed: /feeds/changes.atom (every catalog) and
/feeds/catalogs/{uuid}.atom (one catalog, also after it was deleted: its history stays).

Read as the API reads (a token when anonymous reads are off, one snapshot, the statement
limit, the anonymous-read cache). `?limit=` is read as DRF's LimitOffsetPagination reads
its limit: anything but a positive integer is the default, more than the most is the most.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BeforeValidator
from sqlalchemy import Connection

from syncd.api import errors, representation
from syncd.api.deps import Context, Reader
from syncd.api.feed_queries import FeedCatalog, feed_catalog, recent_runs
from syncd.api.feeds import MEDIA_TYPE, FeedHead, atom_document
from syncd.api.history_queries import RUNS, changes_url, run_url
from syncd.api.routing import head_too
from syncd.api.schemas import ERROR_RESPONSES
from syncd.api.snapshot import read_snapshot

router = APIRouter(prefix="/feeds", tags=["feeds"])

DEFAULT_ENTRIES = 50
MAX_ENTRIES = 200


def _positive_or_default(value: object) -> object:
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number > 0 else None


LimitParam = Annotated[
    int | None,
    BeforeValidator(_positive_or_default),
    Query(description=f"Entries (default {DEFAULT_ENTRIES}, max {MAX_ENTRIES})"),
]


class AtomResponse(Response):
    media_type = MEDIA_TYPE


def _json_error(status: int) -> dict[str, Any]:
    """An error answer of a feed URL: JSON, as every error of the API (the route's own
    media type would otherwise be documented for it)."""
    documented = dict(ERROR_RESPONSES[status])
    model = documented.pop("model", None)
    schema = {"$ref": f"#/components/schemas/{model.__name__}"} if model else {}
    return {**documented, "content": {"application/json": {"schema": schema}}}


FEED_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: _json_error(int(status)) for status in ERROR_RESPONSES},
    200: {
        "description": "An Atom 1.0 feed: one entry per run that changed something, newest "
        "first; entry id urn:uuid:<run uuid>, updated = when the run finished",
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
    },
}


def _entries(limit: int | None) -> int:
    return min(limit or DEFAULT_ENTRIES, MAX_ENTRIES)


def _self_url(request: Request, base: str) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base}{request.url.path}{query}"


def _feed(
    request: Request,
    connection: Connection,
    base: str,
    catalog: FeedCatalog | None,
    limit: int | None,
) -> Response:
    runs = recent_runs(connection, catalog.uuid if catalog else None, _entries(limit))
    if catalog is None:
        title = "syncd: what every catalog's syncs changed"
        alternate = f"{base}{RUNS}"
    else:
        title = f"{catalog.name} {catalog.version}: what its syncs changed"
        alternate = f"{base}{RUNS}?catalog_uuid={catalog.uuid.hex}"
    head = FeedHead(
        # The feed's permanent id: its URL without the query (a `limit` is the same feed).
        feed_id=f"{base}{request.url.path}",
        title=title,
        self_url=_self_url(request, base),
        alternate_url=alternate,
    )
    urls = [(run_url(base, run.uuid), changes_url(base, run.uuid)) for run in runs]
    return AtomResponse(atom_document(head, runs, urls))


@head_too(router, "/changes.atom")
@router.get(
    "/changes.atom",
    response_class=AtomResponse,
    responses=FEED_RESPONSES,
    operation_id="feeds_changes_retrieve",
    summary="Atom feed of the changes of every catalog",
)
def changes_feed(
    request: Request, ctx: Context, _reader: Reader, limit: LimitParam = None
) -> Response:
    with ctx.session_factory() as session:
        connection = read_snapshot(session)
        return _feed(request, connection, ctx.base_url(request), None, limit)


@head_too(router, "/catalogs/{uuid}.atom")
@router.get(
    "/catalogs/{uuid}.atom",
    response_class=AtomResponse,
    responses=FEED_RESPONSES,
    operation_id="feeds_catalogs_retrieve",
    summary="Atom feed of one catalog's changes (400: not a uuid; 404: no such catalog)",
)
def catalog_feed(
    request: Request, ctx: Context, _reader: Reader, uuid: str, limit: LimitParam = None
) -> Response:
    value = representation.parse_uuid(uuid)
    if value is None:
        raise errors.field_error("uuid", "Enter a valid UUID.")
    with ctx.session_factory() as session:
        connection = read_snapshot(session)
        catalog = feed_catalog(connection, value)
        if catalog is None:
            raise errors.not_found()
        return _feed(request, connection, ctx.base_url(request), catalog, limit)
