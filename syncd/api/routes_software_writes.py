"""Staff writes on /api/marketplace-software-{packages,versions,targets}/: create (201 and
the object), update (PUT, PATCH: 200 and the object), delete (204), named as Waldur's clients
name them. Thin: validate the body, hand the write to syncd.service.hand_writes, answer with
the object as the read routes render it.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import Session

from syncd.api import errors, representation
from syncd.api.deps import ApiContext, Context, DbSession, Staff
from syncd.api.pagination import json_response
from syncd.api.schemas import WRITE_RESPONSES, Detail, PackageOut, TargetOut, VersionOut
from syncd.api.software_filters import PackageFilters, TargetFilters, VersionFilters
from syncd.api.software_queries import package_query, target_query, version_query
from syncd.api.software_rendering import (
    render_package_detail,
    render_targets,
    render_versions,
)
from syncd.api.software_write_schemas import (
    NOT_NULL,
    NullField,
    PatchedSoftwarePackageRequest,
    PatchedSoftwareTargetRequest,
    PatchedSoftwareVersionRequest,
    SoftwarePackageRequest,
    SoftwareTargetRequest,
    SoftwareVersionRequest,
    sent_values,
)
from syncd.db.tables import Package, Target, Version
from syncd.errors import TransientError
from syncd.service.hand_writes import (
    Action,
    HandWrite,
    Kind,
    RowNotFound,
    WriteRefused,
    hand_write,
)

router = APIRouter(prefix="/api")

PACKAGES = "/marketplace-software-packages/"
VERSIONS = "/marketplace-software-versions/"
TARGETS = "/marketplace-software-targets/"
RESPONSES: dict[int | str, dict[str, Any]] = {
    **WRITE_RESPONSES,
    503: {"model": Detail, "description": "A sync of the catalog held it too long; try again"},
}
LOCAL_NOTE = (
    " Staff only. A row made here is local: syncs never change, delete or count it. An edit "
    "of a row synced from upstream lasts until upstream changes that row."
)


def _write(ctx: ApiContext, write: HandWrite) -> uuid_module.UUID | None:
    try:
        return hand_write(ctx.engine, write)
    except RowNotFound:
        raise errors.not_found() from None
    except WriteRefused as refused:
        raise errors.field_error(refused.field, refused.message) from None
    except TransientError as exc:  # LockBusyError included: a sync holds the catalog
        raise errors.unavailable(f"Nothing was written; try again: {exc.message}") from None


def _values(body: BaseModel | None) -> Mapping[str, Any]:
    try:
        return sent_values(body) if body is not None else {}
    except NullField as null:
        raise errors.field_error(null.field, NOT_NULL) from None


def _uuid(text: str) -> uuid_module.UUID:
    value = representation.parse_uuid(text)
    if value is None:
        raise errors.not_found()
    return value


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _written_row(session: Session, query: Select) -> Any:
    row = session.connection().execute(query).first()
    if row is None:  # deleted right after it was written
        raise errors.not_found()
    return row


def _package(session: Session, base: str, value: uuid_module.UUID | None) -> dict[str, Any]:
    query = package_query(_dialect(session), PackageFilters()).where(Package.uuid == value)
    return render_package_detail(session, base, _written_row(session, query))


def _version(session: Session, base: str, value: uuid_module.UUID | None) -> dict[str, Any]:
    query = version_query(_dialect(session), VersionFilters()).where(Version.uuid == value)
    return render_versions(session, base, [_written_row(session, query)])[0]


def _target(session: Session, base: str, value: uuid_module.UUID | None) -> dict[str, Any]:
    query = target_query(_dialect(session), TargetFilters()).where(Target.uuid == value)
    return render_targets(base, [_written_row(session, query)])[0]


def _created(request: Request, ctx: ApiContext, session: Session, write: HandWrite) -> Response:
    render = {Kind.PACKAGE: _package, Kind.VERSION: _version, Kind.TARGET: _target}[write.kind]
    written = _write(ctx, write)
    status = 201 if write.action is Action.CREATE else 200
    return json_response(render(session, ctx.base_url(request), written), status_code=status)


def _deleted(ctx: ApiContext, kind: Kind, uuid: str) -> Response:
    _write(ctx, HandWrite(kind, Action.DELETE, _uuid(uuid)))
    return Response(status_code=204)


SUMMARIES = {
    "create": "Create a {name}",
    "update": "Update a {name} (the fields sent)",
    "partial_update": "Partially update a {name}",
}


def _route(method: str, path: str, name: str, action: str, answer: Any) -> Any:
    verbs = {"POST": router.post, "PUT": router.put, "PATCH": router.patch}
    return verbs[method](
        path,
        status_code=201 if method == "POST" else 200,
        response_model=answer,
        responses=RESPONSES,
        operation_id=f"marketplace_software_{name}s_{action}",
        summary=SUMMARIES[action].format(name=name),
        description=LOCAL_NOTE.strip(),
    )


def _destroy_route(path: str, name: str) -> Any:
    return router.delete(
        path + "{uuid}/",
        status_code=204,
        response_class=Response,
        responses=RESPONSES,
        operation_id=f"marketplace_software_{name}s_destroy",
        summary=f"Delete a {name}",
        description=LOCAL_NOTE.strip(),
    )


# --- packages ------------------------------------------------------------------------------


@_route("POST", PACKAGES, "package", "create", PackageOut)
def create_package(
    request: Request, ctx: Context, session: DbSession, _staff: Staff, body: SoftwarePackageRequest
) -> Response:
    write = HandWrite(Kind.PACKAGE, Action.CREATE, values=_values(body))
    return _created(request, ctx, session, write)


@_route("PUT", PACKAGES + "{uuid}/", "package", "update", PackageOut)
def update_package(
    request: Request,
    ctx: Context,
    session: DbSession,
    _staff: Staff,
    uuid: str,
    body: SoftwarePackageRequest,
) -> Response:
    write = HandWrite(Kind.PACKAGE, Action.UPDATE, _uuid(uuid), _values(body))
    return _created(request, ctx, session, write)


@_route("PATCH", PACKAGES + "{uuid}/", "package", "partial_update", PackageOut)
def partial_update_package(
    request: Request,
    ctx: Context,
    session: DbSession,
    _staff: Staff,
    uuid: str,
    body: PatchedSoftwarePackageRequest | None = None,
) -> Response:
    write = HandWrite(Kind.PACKAGE, Action.UPDATE, _uuid(uuid), _values(body))
    return _created(request, ctx, session, write)


@_destroy_route(PACKAGES, "package")
def destroy_package(ctx: Context, _staff: Staff, uuid: str) -> Response:
    return _deleted(ctx, Kind.PACKAGE, uuid)


# --- versions ------------------------------------------------------------------------------


@_route("POST", VERSIONS, "version", "create", VersionOut)
def create_version(
    request: Request, ctx: Context, session: DbSession, _staff: Staff, body: SoftwareVersionRequest
) -> Response:
    write = HandWrite(Kind.VERSION, Action.CREATE, values=_values(body))
    return _created(request, ctx, session, write)


@_route("PUT", VERSIONS + "{uuid}/", "version", "update", VersionOut)
def update_version(
    request: Request,
    ctx: Context,
    session: DbSession,
    _staff: Staff,
    uuid: str,
    body: SoftwareVersionRequest,
) -> Response:
    write = HandWrite(Kind.VERSION, Action.UPDATE, _uuid(uuid), _values(body))
    return _created(request, ctx, session, write)


@_route("PATCH", VERSIONS + "{uuid}/", "version", "partial_update", VersionOut)
def partial_update_version(
    request: Request,
    ctx: Context,
    session: DbSession,
    _staff: Staff,
    uuid: str,
    body: PatchedSoftwareVersionRequest | None = None,
) -> Response:
    write = HandWrite(Kind.VERSION, Action.UPDATE, _uuid(uuid), _values(body))
    return _created(request, ctx, session, write)


@_destroy_route(VERSIONS, "version")
def destroy_version(ctx: Context, _staff: Staff, uuid: str) -> Response:
    return _deleted(ctx, Kind.VERSION, uuid)


# --- targets -------------------------------------------------------------------------------


@_route("POST", TARGETS, "target", "create", TargetOut)
def create_target(
    request: Request, ctx: Context, session: DbSession, _staff: Staff, body: SoftwareTargetRequest
) -> Response:
    write = HandWrite(Kind.TARGET, Action.CREATE, values=_values(body))
    return _created(request, ctx, session, write)


@_route("PUT", TARGETS + "{uuid}/", "target", "update", TargetOut)
def update_target(
    request: Request,
    ctx: Context,
    session: DbSession,
    _staff: Staff,
    uuid: str,
    body: SoftwareTargetRequest,
) -> Response:
    write = HandWrite(Kind.TARGET, Action.UPDATE, _uuid(uuid), _values(body))
    return _created(request, ctx, session, write)


@_route("PATCH", TARGETS + "{uuid}/", "target", "partial_update", TargetOut)
def partial_update_target(
    request: Request,
    ctx: Context,
    session: DbSession,
    _staff: Staff,
    uuid: str,
    body: PatchedSoftwareTargetRequest | None = None,
) -> Response:
    write = HandWrite(Kind.TARGET, Action.UPDATE, _uuid(uuid), _values(body))
    return _created(request, ctx, session, write)


@_destroy_route(TARGETS, "target")
def destroy_target(ctx: Context, _staff: Staff, uuid: str) -> Response:
    return _deleted(ctx, Kind.TARGET, uuid)
