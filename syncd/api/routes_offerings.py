"""/api/marketplace-provider-offerings/{uuid}/: the software catalog actions of Waldur's
provider offerings (add_software_catalog, update_software_catalog, remove_software_catalog)
and the offering as syncd knows it (its uuid and `software_catalogs`), also under
/api/marketplace-public-offerings/{uuid}/ as Waldur's public offering page reads it.

Offerings are Waldur's: any well-formed uuid names one, and one syncd has no link of has no
software catalogs. Who may change an offering's links is syncd.tokens' mapping of Waldur's
UPDATE_OFFERING: staff tokens, and tokens granted that offering. Routes are thin: the writes
are in offering_links.py, the reads in offering_queries.py.
"""

from __future__ import annotations

import uuid as uuid_module
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from syncd.api import errors, representation
from syncd.api.deps import Caller, Context, DbSession, Reader
from syncd.api.offering_links import add_link, remove_link, update_link
from syncd.api.offering_queries import link_detail, offering_links
from syncd.api.offering_schemas import (
    OfferingCatalogAdd,
    OfferingCatalogPatch,
    OfferingCatalogRemove,
    OfferingCatalogsOut,
    OfferingSoftwareCatalogOut,
    SoftwareCatalogUuidOut,
)
from syncd.api.pagination import json_response, select_fields
from syncd.api.routing import head_too
from syncd.api.schemas import ERROR_RESPONSES, WRITE_RESPONSES
from syncd.api.snapshot import read_snapshot
from syncd.tokens import may_manage_offering

router = APIRouter(
    prefix="/api/marketplace-provider-offerings", tags=["marketplace-provider-offerings"]
)
public_router = APIRouter(
    prefix="/api/marketplace-public-offerings", tags=["marketplace-public-offerings"]
)

ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **WRITE_RESPONSES,
    403: {"description": "The token may not manage this offering (not staff, not granted it)"},
    404: {
        "description": 'The offering uuid is not a uuid ({"detail": "Not found."}), or the '
        'offering has no such link ({"error": "Software catalog association not found"})'
    },
}


def _managed_offering(ctx: Context, caller: Caller, uuid: str) -> uuid_module.UUID:
    """The URL's offering, once the caller may manage it: 401, then 404, then 403, in
    Waldur's order (authentication, the object, its permission), before the body is read."""
    offering = representation.parse_uuid(uuid)
    if offering is None:
        raise errors.not_found()
    with ctx.session_factory() as session:
        allowed = may_manage_offering(session, caller, offering)
    if not allowed:
        raise errors.permission_denied()
    return offering


ManagedOffering = Annotated[uuid_module.UUID, Depends(_managed_offering)]


@router.post(
    "/{uuid}/add_software_catalog/",
    status_code=201,
    response_model=SoftwareCatalogUuidOut,
    responses=ACTION_RESPONSES,
    operation_id="marketplace_provider_offerings_add_software_catalog",
    summary="Link a software catalog to an offering, with its enabled CPU targets",
)
def add_software_catalog(
    session: DbSession, offering: ManagedOffering, body: OfferingCatalogAdd
) -> Response:
    return json_response({"uuid": add_link(session, offering, body)}, status_code=201)


@router.patch(
    "/{uuid}/update_software_catalog/",
    response_model=OfferingSoftwareCatalogOut,
    responses=ACTION_RESPONSES,
    operation_id="marketplace_provider_offerings_update_software_catalog_partial_update",
    summary="Change a link (offering_catalog_uuid): its catalog, CPU targets or partition",
)
def update_software_catalog(
    session: DbSession, offering: ManagedOffering, body: OfferingCatalogPatch | None = None
) -> Response:
    link, catalog = update_link(session, offering, body or OfferingCatalogPatch())
    return json_response(link_detail(link, catalog))


@router.post(
    "/{uuid}/remove_software_catalog/",
    status_code=204,
    responses=ACTION_RESPONSES,
    operation_id="marketplace_provider_offerings_remove_software_catalog",
    summary="Unlink a software catalog (offering_catalog_uuid) from an offering",
)
def remove_software_catalog(
    session: DbSession, offering: ManagedOffering, body: OfferingCatalogRemove | None = None
) -> Response:
    remove_link(session, offering, body or OfferingCatalogRemove())
    return Response(status_code=204)


def _offering(request: Request, session: DbSession, _reader: Reader, uuid: str) -> Response:
    """The offering's uuid and software_catalogs (NestedSoftwareCatalog), as Waldur's
    offering retrieve answers `?field=software_catalogs`."""
    offering = representation.parse_uuid(uuid)
    if offering is None:
        raise errors.not_found()
    read_snapshot(session)
    item = {"uuid": offering.hex, "software_catalogs": offering_links(session, offering)}
    return json_response(select_fields(request, item))


SUMMARY = "An offering's software catalogs (syncd knows offerings by uuid only)"

for _router, _name in ((router, "provider"), (public_router, "public")):
    head_too(_router, "/{uuid}/")(_offering)
    _router.get(
        "/{uuid}/",
        response_model=OfferingCatalogsOut,
        responses=ERROR_RESPONSES,
        operation_id=f"marketplace_{_name}_offerings_retrieve",
        summary=SUMMARY,
    )(_offering)
