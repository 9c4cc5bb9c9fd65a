"""Read-only /api/marketplace-software-catalog-runs/ (list, retrieve) and
/api/marketplace-software-changes/ (list): what each sync attempt did and what it changed
(issue 15). Routes are thin: queries and wire shapes are in history_queries.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from syncd.api import errors, representation
from syncd.api.deps import Context, DbSession, Reader
from syncd.api.filters import MAX_ORDER_TERMS
from syncd.api.history_queries import (
    CHANGE_ORDERING,
    RUN_ORDERING,
    change_item,
    change_query,
    run_item,
    run_query,
)
from syncd.api.history_schemas import ChangeFilters, ChangeOut, RunFilters, RunOut
from syncd.api.pagination import PageParam, PageSizeParam, json_response, paginated, select_fields
from syncd.api.routing import head_too, list_route
from syncd.api.schemas import ERROR_RESPONSES
from syncd.api.snapshot import read_snapshot
from syncd.db.process_tables import SyncRun

router = APIRouter(prefix="/api")

RUNS_PATH = "/marketplace-software-catalog-runs/"
CHANGES_PATH = "/marketplace-software-changes/"


def _order_help(allowed: dict[str, Any], default: str) -> str:
    return (
        "Comma-separated: "
        + ", ".join(sorted(allowed))
        + f" (prefix - for descending; at most {MAX_ORDER_TERMS}); of repeated keys the last "
        "counts, as in Waldur; default: " + default
    )


RunOrder = Annotated[
    list[str] | None, Query(description=_order_help(RUN_ORDERING, "newest first (-started)"))
]
ChangeOrder = Annotated[
    list[str] | None,
    Query(description=_order_help(CHANGE_ORDERING, "newest first (-created, last written first)")),
]


@list_route(router, RUNS_PATH, "marketplace_software_catalog_runs", RunOut)
def list_runs(
    request: Request,
    ctx: Context,
    _reader: Reader,
    filters: Annotated[RunFilters, Query()],
    o: RunOrder = None,
    page: PageParam = None,
    page_size: PageSizeParam = None,
) -> Response:
    base = ctx.base_url(request)
    # Opened here rather than by DbSession: see routes_catalogs.list_catalogs.
    with ctx.session_factory() as session:
        return paginated(
            request,
            session,
            run_query(filters, o),
            base=base,
            number=page,
            size=page_size,
            render=lambda rows: [run_item(base, row) for row in rows],
        )


@head_too(router, RUNS_PATH + "{uuid}/")
@router.get(
    RUNS_PATH + "{uuid}/",
    response_model=RunOut,
    responses=ERROR_RESPONSES,
    operation_id="marketplace_software_catalog_runs_retrieve",
    summary="One sync run: trigger, outcome, upstream validators, counts, error",
)
def retrieve_run(
    request: Request, ctx: Context, session: DbSession, _reader: Reader, uuid: str
) -> Response:
    value = representation.parse_uuid(uuid)
    read_snapshot(session)
    query = run_query(RunFilters()).where(SyncRun.uuid == value)
    row = None if value is None else session.connection().execute(query).first()
    if row is None:
        raise errors.not_found()
    return json_response(select_fields(request, run_item(ctx.base_url(request), row)))


@list_route(router, CHANGES_PATH, "marketplace_software_changes", ChangeOut)
def list_changes(
    request: Request,
    ctx: Context,
    _reader: Reader,
    filters: Annotated[ChangeFilters, Query()],
    o: ChangeOrder = None,
    page: PageParam = None,
    page_size: PageSizeParam = None,
) -> Response:
    base = ctx.base_url(request)
    with ctx.session_factory() as session:
        return paginated(
            request,
            session,
            change_query(filters, o),
            base=base,
            number=page,
            size=page_size,
            render=lambda rows: [change_item(row) for row in rows],
        )
