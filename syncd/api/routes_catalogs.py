"""/api/marketplace-software-catalogs/: CRUD, import_catalog, update_catalog, discover,
cpu_targets. Routes are thin: the list query is here, the writes are in catalog_actions.py.
"""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from syncd.api import representation
from syncd.api.catalog_actions import (
    apply_fields,
    create_catalog,
    delete_catalog,
    enqueue_import,
    enqueue_update,
    get_catalog,
    save_catalog,
)
from syncd.api.deps import Context, DbSession, Reader, Staff
from syncd.api.filter_params import FilterBool, FilterCatalogType
from syncd.api.filters import icontains, parse_ordering
from syncd.api.pagination import (
    PageParam,
    PageSizeParam,
    headers_only,
    json_response,
    paginated,
    select_fields,
)
from syncd.api.routing import head_too, list_route
from syncd.api.schemas import (
    ERROR_RESPONSES,
    HEAD_OK,
    LIST_HEADERS,
    WRITE_RESPONSES,
    CatalogCreate,
    CatalogOut,
    CatalogPatch,
    CpuTargetOut,
    Detail,
    DiscoverOut,
    FilterText,
    ImportAccepted,
    ImportRequest,
    UpdateAccepted,
    UpdateRequest,
)
from syncd.api.snapshot import read_snapshot
from syncd.api.software_queries import columns
from syncd.db.tables import Catalog
from syncd.discovery import discover
from syncd.domain import CatalogType

router = APIRouter(
    prefix="/api/marketplace-software-catalogs", tags=["marketplace-software-catalogs"]
)

ORDERING = {
    "catalog_type": [Catalog.catalog_type],
    "created": [Catalog.created],
    "modified": [Catalog.modified],
    "name": [Catalog.name],
    "version": [Catalog.version],
}
DEFAULT_ORDER = [Catalog.name, Catalog.catalog_type, Catalog.version]
ORDER_HELP = (
    "Comma-separated: "
    + ", ".join(sorted(ORDERING))
    + " (prefix - for descending); of repeated keys the last counts, as in Waldur"
)

OrderParam = Annotated[list[str] | None, Query(description=ORDER_HELP)]


# --- plain functions -------------------------------------------------------------------


def catalog_query(
    *,
    name: str | None = None,
    version: str | None = None,
    description: str | None = None,
    catalog_type: CatalogType | None = None,
    auto_update_enabled: bool | None = None,
    o: list[str] | None = None,
) -> Select:
    filtered = name or version or description or o
    if not filtered and catalog_type is None and auto_update_enabled is None:
        return _default_catalog_query()
    return _catalog_query(name, version, description, catalog_type, auto_update_enabled, o)


@functools.cache
def _default_catalog_query() -> Select:
    """The unfiltered list's statement, built once (see pagination._page_statement)."""
    return _catalog_query(None, None, None, None, None, None)


def _catalog_query(
    name: str | None,
    version: str | None,
    description: str | None,
    catalog_type: CatalogType | None,
    auto_update_enabled: bool | None,
    o: list[str] | None,
) -> Select:
    query = select(*columns(Catalog))  # rows, not ORM objects: lists only read them
    if name:
        query = query.where(icontains(Catalog.name, name))
    if version:
        query = query.where(icontains(Catalog.version, version))
    if description:
        query = query.where(icontains(Catalog.description, description))
    if catalog_type is not None:
        query = query.where(Catalog.catalog_type == catalog_type.value)
    if auto_update_enabled is not None:
        query = query.where(Catalog.auto_update_enabled.is_(auto_update_enabled))
    ordering = parse_ordering(o, ORDERING) or [column.asc() for column in DEFAULT_ORDER]
    return query.order_by(*ordering, Catalog.id)


# --- routes ----------------------------------------------------------------------------


@list_route(router, "/", "marketplace_software_catalogs", CatalogOut)
def list_catalogs(
    request: Request,
    ctx: Context,
    _reader: Reader,
    name: FilterText | None = None,
    version: FilterText | None = None,
    description: FilterText | None = None,
    catalog_type: FilterCatalogType = None,
    auto_update_enabled: FilterBool = None,
    o: OrderParam = None,
    page: PageParam = None,
    page_size: PageSizeParam = None,
) -> Response:
    query = catalog_query(
        name=name,
        version=version,
        description=description,
        catalog_type=catalog_type,
        auto_update_enabled=auto_update_enabled,
        o=o,
    )
    base = ctx.base_url(request)
    # The session opened here, in the handler's thread, rather than by the DbSession
    # dependency: an async generator dependency costs the event loop more than the page.
    with ctx.session_factory() as session:
        return paginated(
            request,
            session,
            query,
            base=base,
            number=page,
            size=page_size,
            render=lambda rows: [representation.catalog(base, row) for row in rows],
            count_in_page=True,  # a handful of rows
        )


@router.post(
    "/",
    status_code=201,
    response_model=CatalogOut,
    responses=WRITE_RESPONSES,
    operation_id="marketplace_software_catalogs_create",
)
def create(
    request: Request, ctx: Context, session: DbSession, _staff: Staff, body: CatalogCreate
) -> Response:
    base = ctx.base_url(request)
    row = create_catalog(session, ctx.settings, body, base=base)
    return json_response(representation.catalog(base, row), status_code=201)


@router.get(
    "/discover/",
    response_model=list[DiscoverOut],
    responses={**WRITE_RESPONSES, 200: {"headers": LIST_HEADERS}},
    operation_id="marketplace_software_catalogs_discover_list",
    summary="What each registered adapter offers upstream (cached)",
)
def discover_catalogs(ctx: Context, _staff: Staff) -> Response:
    entries = discover(ctx.engine, ctx.adapters, ctx.fetcher, cache=ctx.discover_cache)
    return json_response(entries, headers={"X-Result-Count": str(len(entries))})


@router.head(
    "/discover/",
    response_class=Response,
    responses={**WRITE_RESPONSES, 200: HEAD_OK},
    operation_id="marketplace_software_catalogs_discover_count",
)
def head_discover(ctx: Context, _staff: Staff) -> Response:
    return headers_only({"X-Result-Count": str(len(ctx.adapters))})


@router.post(
    "/import_catalog/",
    status_code=202,
    response_model=ImportAccepted,
    responses={**WRITE_RESPONSES, 503: {"model": Detail, "description": "Queue unavailable"}},
    operation_id="marketplace_software_catalogs_import_catalog",
    summary="Enqueue the import of a catalog from a registered adapter",
)
def import_catalog(
    ctx: Context, session: DbSession, _staff: Staff, body: ImportRequest
) -> Response:
    return json_response(enqueue_import(ctx, session, body), status_code=202)


@head_too(router, "/{uuid}/")
@router.get(
    "/{uuid}/",
    response_model=CatalogOut,
    responses=ERROR_RESPONSES,
    operation_id="marketplace_software_catalogs_retrieve",
)
def retrieve(
    request: Request, ctx: Context, session: DbSession, _reader: Reader, uuid: str
) -> Response:
    read_snapshot(session)
    row = get_catalog(session, uuid)
    return json_response(select_fields(request, representation.catalog(ctx.base_url(request), row)))


def _update(
    request: Request, ctx: Context, session: Session, uuid: str, body: BaseModel
) -> Response:
    row = get_catalog(session, uuid)
    apply_fields(row, body, ctx.settings)
    save_catalog(session, row)
    return json_response(representation.catalog(ctx.base_url(request), row))


@router.put(
    "/{uuid}/",
    response_model=CatalogOut,
    responses=WRITE_RESPONSES,
    operation_id="marketplace_software_catalogs_update",
)
def update(
    request: Request,
    ctx: Context,
    session: DbSession,
    _staff: Staff,
    uuid: str,
    body: CatalogCreate,
) -> Response:
    return _update(request, ctx, session, uuid, body)


@router.patch(
    "/{uuid}/",
    response_model=CatalogOut,
    responses=WRITE_RESPONSES,
    operation_id="marketplace_software_catalogs_partial_update",
)
def partial_update(
    request: Request,
    ctx: Context,
    session: DbSession,
    _staff: Staff,
    uuid: str,
    body: CatalogPatch | None = None,
) -> Response:
    return _update(request, ctx, session, uuid, body or CatalogPatch())


@router.delete(
    "/{uuid}/",
    status_code=204,
    responses=WRITE_RESPONSES,
    operation_id="marketplace_software_catalogs_destroy",
)
def destroy(session: DbSession, _staff: Staff, uuid: str) -> Response:
    delete_catalog(session, get_catalog(session, uuid))
    return Response(status_code=204)


@router.post(
    "/{uuid}/update_catalog/",
    status_code=202,
    response_model=UpdateAccepted,
    responses={**WRITE_RESPONSES, 503: {"model": Detail, "description": "Queue unavailable"}},
    operation_id="marketplace_software_catalogs_update_catalog",
    summary='Enqueue an update of this catalog (body optional: {"force": true})',
)
def update_catalog(
    ctx: Context, session: DbSession, _staff: Staff, uuid: str, body: UpdateRequest | None = None
) -> Response:
    force = body.force if body is not None else False
    return json_response(enqueue_update(ctx, session, uuid, force=force), status_code=202)


@head_too(router, "/{uuid}/cpu_targets/")
@router.get(
    "/{uuid}/cpu_targets/",
    response_model=list[CpuTargetOut],
    responses=ERROR_RESPONSES,
    operation_id="marketplace_software_catalogs_cpu_targets_list",
    summary="CPU family/microarchitecture choices of a binary runtime ([] for others)",
)
def cpu_targets(session: DbSession, _reader: Reader, uuid: str) -> Response:
    read_snapshot(session)
    return json_response(representation.cpu_targets(get_catalog(session, uuid)))
