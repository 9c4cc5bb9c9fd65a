"""Read-only /api/marketplace-software-{packages,versions,targets}/: list (GET, HEAD) and
retrieve, with the reference's filters and orderings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import Select
from sqlalchemy.orm import Session

from syncd.api import errors, representation
from syncd.api.deps import ApiContext, Context, DbSession, Reader
from syncd.api.package_list import package_list_query
from syncd.api.pagination import PageParam, PageSizeParam, json_response, paginated, select_fields
from syncd.api.routing import head_too, list_route
from syncd.api.schemas import (
    ERROR_RESPONSES,
    PackageOut,
    TargetOut,
    VersionOut,
)
from syncd.api.snapshot import read_snapshot
from syncd.api.software_filters import (
    PACKAGE_ORDERING,
    TARGET_ORDERING,
    VERSION_ORDERING,
    PackageFilters,
    TargetFilters,
    VersionFilters,
)
from syncd.api.software_queries import (
    package_query,
    stored_count_query,
    target_query,
    version_query,
)
from syncd.api.software_rendering import (
    render_package_detail,
    render_packages,
    render_targets,
    render_versions,
)
from syncd.db.tables import Package, Target, Version

router = APIRouter(prefix="/api")


def _order_help(allowed: dict[str, Any], default: str) -> str:
    return (
        "Comma-separated: "
        + ", ".join(sorted(allowed))
        + " (prefix - for descending); of repeated keys the last counts, as in Waldur; default: "
        + default
    )


PackageOrder = Annotated[
    list[str] | None,
    Query(
        description=_order_help(
            PACKAGE_ORDERING, "name, case-insensitively (same names: the earlier stored first)"
        )
    ),
]
VersionOrder = Annotated[
    list[str] | None,
    Query(
        description=_order_help(
            VERSION_ORDERING,
            "package (as the package list), then version, oldest first; `version` compares "
            "by the upstream's version semantics, not as strings",
        )
    ),
]
TargetOrder = Annotated[
    list[str] | None,
    Query(description=_order_help(TARGET_ORDERING, "newest first (-created)")),
]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _one(session: Session, query: Select, uuid_column: Any, text: str) -> Any:
    """The row of a retrieve; it begins the request's snapshot, which what the object embeds
    is then read in."""
    value = representation.parse_uuid(text)
    read_snapshot(session)
    row = (
        None
        if value is None
        else session.connection().execute(query.where(uuid_column == value)).first()
    )
    if row is None:
        raise errors.not_found()
    return row


# --- packages --------------------------------------------------------------------------


@list_route(router, "/marketplace-software-packages/", "marketplace_software_packages", PackageOut)
def list_packages(
    request: Request,
    ctx: Context,
    _reader: Reader,
    filters: Annotated[PackageFilters, Query()],
    o: PackageOrder = None,
    page: PageParam = None,
    page_size: PageSizeParam = None,
) -> Response:
    return package_page(request, ctx, filters, o, page, page_size)


def package_page(
    request: Request,
    ctx: ApiContext,
    filters: PackageFilters,
    o: list[str] | None,
    page: int | None,
    page_size: int | None,
) -> Response:
    """The list's answer once its parameters are read: the FastAPI route's and the lean
    path's (syncd/api/lean/)."""
    base = ctx.base_url(request)
    fields = request.query_params.getlist("field")  # none of the embedded ones: not read
    # Opened here rather than by DbSession: see routes_catalogs.list_catalogs.
    with ctx.session_factory() as session:
        query, count_query = package_list_query(_dialect(session), filters, o)
        return paginated(
            request,
            session,
            query,
            base=base,
            number=page,
            size=page_size,
            render=lambda rows: render_packages(session, base, rows, fields),
            count_query=count_query,
        )


@head_too(router, "/marketplace-software-packages/{uuid}/")
@router.get(
    "/marketplace-software-packages/{uuid}/",
    response_model=PackageOut,
    responses=ERROR_RESPONSES,
    operation_id="marketplace_software_packages_retrieve",
    summary="One package with its versions, targets, parents and extensions",
)
def retrieve_package(
    request: Request, ctx: Context, session: DbSession, _reader: Reader, uuid: str
) -> Response:
    row = _one(session, package_query(_dialect(session), PackageFilters()), Package.uuid, uuid)
    item = render_package_detail(session, ctx.base_url(request), row)
    return json_response(select_fields(request, item))


# --- versions --------------------------------------------------------------------------


@list_route(router, "/marketplace-software-versions/", "marketplace_software_versions", VersionOut)
def list_versions(
    request: Request,
    ctx: Context,
    session: DbSession,
    _reader: Reader,
    filters: Annotated[VersionFilters, Query()],
    o: VersionOrder = None,
    page: PageParam = None,
    page_size: PageSizeParam = None,
) -> Response:
    return version_page(request, ctx, session, filters, o, page, page_size)


def version_page(
    request: Request,
    ctx: ApiContext,
    session: Session,
    filters: VersionFilters,
    o: list[str] | None,
    page: int | None,
    page_size: int | None,
) -> Response:
    """The list's answer once its parameters are read (as package_page)."""
    base = ctx.base_url(request)
    return paginated(
        request,
        session,
        version_query(_dialect(session), filters, o),
        base=base,
        number=page,
        size=page_size,
        render=lambda rows: render_versions(session, base, rows),
        count_query=stored_count_query(filters, "version_count"),
        # One package's versions are few: counted along with the page, one statement less
        # for the portal's expanded row.
        count_in_page=filters.package_uuid is not None,
    )


@head_too(router, "/marketplace-software-versions/{uuid}/")
@router.get(
    "/marketplace-software-versions/{uuid}/",
    response_model=VersionOut,
    responses=ERROR_RESPONSES,
    operation_id="marketplace_software_versions_retrieve",
)
def retrieve_version(
    request: Request, ctx: Context, session: DbSession, _reader: Reader, uuid: str
) -> Response:
    row = _one(session, version_query(_dialect(session), VersionFilters()), Version.uuid, uuid)
    item = render_versions(session, ctx.base_url(request), [row])[0]
    return json_response(select_fields(request, item))


# --- targets ---------------------------------------------------------------------------


@list_route(router, "/marketplace-software-targets/", "marketplace_software_targets", TargetOut)
def list_targets(
    request: Request,
    ctx: Context,
    session: DbSession,
    _reader: Reader,
    filters: Annotated[TargetFilters, Query()],
    o: TargetOrder = None,
    page: PageParam = None,
    page_size: PageSizeParam = None,
) -> Response:
    base = ctx.base_url(request)
    return paginated(
        request,
        session,
        target_query(_dialect(session), filters, o),
        base=base,
        number=page,
        size=page_size,
        render=lambda rows: render_targets(base, rows),
        count_query=stored_count_query(filters, "target_count"),
    )


@head_too(router, "/marketplace-software-targets/{uuid}/")
@router.get(
    "/marketplace-software-targets/{uuid}/",
    response_model=TargetOut,
    responses=ERROR_RESPONSES,
    operation_id="marketplace_software_targets_retrieve",
)
def retrieve_target(
    request: Request, ctx: Context, session: DbSession, _reader: Reader, uuid: str
) -> Response:
    row = _one(session, target_query(_dialect(session), TargetFilters()), Target.uuid, uuid)
    return json_response(select_fields(request, render_targets(ctx.base_url(request), [row])[0]))
