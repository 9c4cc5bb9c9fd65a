"""Reads of the offering-catalog links: the catalogs an offering is linked to (the
`offering_uuid` filter of the package, version and target lists), and the links as Waldur's
offering shows them (`software_catalogs`, NestedSoftwareCatalog) or its update answers them
(OfferingSoftwareCatalog).

Offerings are Waldur's: an offering syncd has no link of is not an error, it has no
catalogs, so its filter matches nothing (never everything).
"""

from __future__ import annotations

import uuid as uuid_module
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from syncd.api.representation import iso_datetime
from syncd.db.tables import Catalog, OfferingCatalog
from syncd.domain import CatalogType


def linked_catalog_ids(offering_uuid: uuid_module.UUID) -> Select:
    """The ids of the catalogs linked to `offering_uuid`: `catalog_id IN (...)` of a list
    query (served by the links' unique index, which leads with the offering)."""
    return select(OfferingCatalog.catalog_id).where(OfferingCatalog.offering_uuid == offering_uuid)


def offering_links(session: Session, offering_uuid: uuid_module.UUID) -> list[dict[str, Any]]:
    """The offering's links in the NestedSoftwareCatalog shape, oldest link first (Waldur's
    relation has no ordering of its own: the database's, by primary key)."""
    rows = session.execute(
        select(
            OfferingCatalog.uuid,
            OfferingCatalog.enabled_cpu_family,
            OfferingCatalog.enabled_cpu_microarchitectures,
            OfferingCatalog.partition_uuid,
            Catalog.uuid.label("catalog_uuid"),
            Catalog.name,
            Catalog.version,
            Catalog.description,
            Catalog.catalog_type,
            Catalog.package_count,
        )
        .join(Catalog, Catalog.id == OfferingCatalog.catalog_id)
        .where(OfferingCatalog.offering_uuid == offering_uuid)
        .order_by(OfferingCatalog.id)
    )
    return [
        {
            "uuid": row.uuid.hex,
            "catalog": {
                "uuid": row.catalog_uuid.hex,
                "name": row.name,
                "version": row.version,
                "description": row.description,
                "supports_cpu_target_restrictions": row.catalog_type == CatalogType.BINARY_RUNTIME,
            },
            "enabled_cpu_family": row.enabled_cpu_family,
            "enabled_cpu_microarchitectures": row.enabled_cpu_microarchitectures,
            # The stored count the sync keeps: no count query per link.
            "package_count": row.package_count,
            "partition": _partition(row.partition_uuid),
        }
        for row in rows
    ]


def link_detail(link: OfferingCatalog, catalog: Catalog) -> dict[str, Any]:
    """A link as Waldur's update_software_catalog answers it. syncd knows neither the
    offering's nor the partition's name: both are empty strings (the keys stay, as Waldur's
    generated clients require them)."""
    return {
        "uuid": link.uuid.hex,
        "created": iso_datetime(link.created),
        "modified": iso_datetime(link.modified),
        "offering": link.offering_uuid.hex,
        "catalog": catalog.uuid.hex,
        "offering_name": "",
        "catalog_name": catalog.name,
        "catalog_version": catalog.version,
        "enabled_cpu_family": link.enabled_cpu_family,
        "enabled_cpu_microarchitectures": link.enabled_cpu_microarchitectures,
        "partition": link.partition_uuid.hex if link.partition_uuid else None,
        "partition_name": "",
    }


def _partition(value: uuid_module.UUID | None) -> dict[str, str] | None:
    return {"uuid": value.hex} if value is not None else None
