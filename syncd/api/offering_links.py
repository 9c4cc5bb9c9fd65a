"""What the offering routes do to the offering-catalog links: find, validate, save, delete,
as Waldur's add_software_catalog / update_software_catalog / remove_software_catalog do.

Validation is DRF's, field by field first (the catalog exists, each CPU value is a string),
then against the catalog: where the catalog has CPU targets (cpu_targets, from its
architectures_map), each enabled CPU family and microarchitecture must be one of them,
worded as DRF's ListField of choices words it ({"enabled_cpu_family": {"1": ['"sparc" is
not a valid choice.']}}). A catalog without CPU targets (Spack; an EESSI catalog without
its map) takes the values as given, as Waldur does for every catalog.

A link of another offering is not found here (Waldur's newest remove_software_catalog scopes
it too). Every committed change is announced through syncd.cache_events, so the API's
response cache forgets lists filtered by the offering.
"""

from __future__ import annotations

import uuid as uuid_module
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd import cache_events
from syncd.api import errors, representation
from syncd.api.offering_schemas import (
    NOT_NULL,
    OfferingCatalogAdd,
    OfferingCatalogPatch,
    OfferingCatalogRemove,
)
from syncd.api.schemas import _text
from syncd.db.tables import Catalog, OfferingCatalog

LINK_NOT_FOUND = "Software catalog association not found"
UNIQUE_LINK = "The fields offering, catalog must make a unique set."
ALREADY_LINKED = "This software catalog is already linked to the offering."
CPU_FIELDS = ("enabled_cpu_family", "enabled_cpu_microarchitectures")

# {field: [messages]} or, for a list's items, {field: {index: [messages]}} (DRF's shapes).
FieldErrors = dict[str, Any]


def link_not_found() -> errors.ApiError:
    # Waldur's view answers this body itself, not DRF's {"detail": ...}.
    return errors.ApiError(404, {"error": LINK_NOT_FOUND})


def find_link(session: Session, offering: uuid_module.UUID, value: Any) -> OfferingCatalog:
    """The offering's link named by `offering_catalog_uuid`; anything else (absent, not a
    uuid, unknown, another offering's) is Waldur's 404."""
    link_uuid = representation.parse_uuid(value) if isinstance(value, str) else None
    link = (
        None
        if link_uuid is None
        else session.execute(
            select(OfferingCatalog).where(
                OfferingCatalog.uuid == link_uuid, OfferingCatalog.offering_uuid == offering
            )
        ).scalar_one_or_none()
    )
    if link is None:
        raise link_not_found()
    return link


def _catalog(session: Session, text: str, found: FieldErrors) -> Catalog | None:
    row = session.execute(
        select(Catalog).where(Catalog.uuid == uuid_module.UUID(text))
    ).scalar_one_or_none()
    if row is None:
        found["catalog"] = [f"Object with uuid={text} does not exist."]
    return row


def _strings(field: str, values: list[Any], found: FieldErrors) -> list[str]:
    """The items as DRF's CharField child takes them (numbers as text, trimmed); the
    refused ones by index into `found`."""
    cleaned: list[str] = []
    refused: dict[str, list[str]] = {}
    for index, value in enumerate(values):
        if value is None:
            refused[str(index)] = [NOT_NULL]
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            refused[str(index)] = ["Not a valid string."]
            continue
        text = str(value).strip()
        try:
            _text(text)  # no NUL, no lone surrogate: JSONB could not store them
        except ValueError as exc:
            refused[str(index)] = [str(exc)]
            continue
        if not text:
            refused[str(index)] = ["This field may not be blank."]
            continue
        cleaned.append(text)
    if refused:
        found[field] = refused
    return cleaned


def _choices(catalog: Catalog) -> dict[str, set[str]] | None:
    """The CPU values a link to `catalog` may enable; None when the catalog has no CPU
    targets (nothing to check against)."""
    targets = representation.cpu_targets(catalog)
    if not targets:
        return None
    return {
        "enabled_cpu_family": {t["cpu_family"] for t in targets},
        "enabled_cpu_microarchitectures": {t["cpu_microarchitecture"] for t in targets},
    }


def _check_choices(catalog: Catalog, values: dict[str, list[str]]) -> None:
    allowed = _choices(catalog)
    if allowed is None:
        return
    found: FieldErrors = {}
    for field, items in values.items():
        refused = {
            str(index): [f'"{item}" is not a valid choice.']
            for index, item in enumerate(items)
            if item not in allowed[field]
        }
        if refused:
            found[field] = refused
    if found:
        raise errors.ApiError(400, found)


def _fail_on(found: FieldErrors) -> None:
    if found:
        raise errors.ApiError(400, found)


def _commit(session: Session, on_conflict: errors.ApiError) -> None:
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request linked the same catalog between the check and the commit.
        session.rollback()
        raise on_conflict from None
    cache_events.data_changed()


def _linked(
    session: Session, offering: uuid_module.UUID, catalog: Catalog, except_link: int | None
) -> bool:
    query = select(OfferingCatalog.id).where(
        OfferingCatalog.offering_uuid == offering, OfferingCatalog.catalog_id == catalog.id
    )
    return any(link_id != except_link for link_id in session.execute(query).scalars())


def add_link(session: Session, offering: uuid_module.UUID, body: OfferingCatalogAdd) -> str:
    """Link the body's catalog to `offering`; the new link's uuid (32 hex digits)."""
    found: FieldErrors = {}
    catalog = _catalog(session, body.catalog, found)
    values = {field: _strings(field, getattr(body, field), found) for field in CPU_FIELDS}
    _fail_on(found)
    assert catalog is not None
    _check_choices(catalog, values)
    duplicate = errors.field_error("non_field_errors", UNIQUE_LINK)
    if _linked(session, offering, catalog, None):
        raise duplicate
    link = OfferingCatalog(
        offering_uuid=offering,
        catalog_id=catalog.id,
        partition_uuid=uuid_module.UUID(body.partition) if body.partition else None,
        **values,
    )
    session.add(link)
    _commit(session, duplicate)
    return link.uuid.hex


def update_link(
    session: Session, offering: uuid_module.UUID, body: OfferingCatalogPatch
) -> tuple[OfferingCatalog, Catalog]:
    """Change the fields the body names on the offering's link; the link and its catalog."""
    link = find_link(session, offering, body.offering_catalog_uuid)
    sent = body.model_fields_set
    # PATCH fields are optional, not nullable (the partition excepted): DRF refuses a null.
    nulls = [f for f in ("catalog", *CPU_FIELDS) if f in sent and getattr(body, f) is None]
    found: FieldErrors = {field: [NOT_NULL] for field in nulls}
    catalog = (
        _catalog(session, body.catalog, found)
        if body.catalog is not None
        else session.get_one(Catalog, link.catalog_id)
    )
    values = {
        field: _strings(field, getattr(body, field), found)
        for field in CPU_FIELDS
        if getattr(body, field) is not None
    }
    _fail_on(found)
    assert catalog is not None
    moved = catalog.id != link.catalog_id
    if moved and _linked(session, offering, catalog, link.id):
        raise errors.field_error("catalog", ALREADY_LINKED)
    # The values sent are checked; the stored ones too when they move to another catalog.
    _check_choices(catalog, _resulting(link, values) if moved else values)
    link.catalog_id = catalog.id
    for field, items in values.items():
        setattr(link, field, items)
    if "partition" in sent:
        link.partition_uuid = uuid_module.UUID(body.partition) if body.partition else None
    _commit(session, errors.field_error("catalog", ALREADY_LINKED))
    return link, catalog


def _resulting(link: OfferingCatalog, values: dict[str, list[str]]) -> dict[str, list[str]]:
    return {field: values.get(field, list(getattr(link, field))) for field in CPU_FIELDS}


def remove_link(session: Session, offering: uuid_module.UUID, body: OfferingCatalogRemove) -> None:
    session.delete(find_link(session, offering, body.offering_catalog_uuid))
    session.commit()
    cache_events.data_changed()
