"""Request bodies and response shapes of the offering routes, as Waldur's serializers name
them (OfferingSoftwareCatalogRequest, PatchedOfferingSoftwareCatalogUpdateRequest,
RemoveSoftwareCatalogRequest, SoftwareCatalogUUID, OfferingSoftwareCatalog,
NestedSoftwareCatalog).

Parsing is lenient where Waldur's view is (a missing or unknown `offering_catalog_uuid` is
its 404, not a 400) and worded as DRF words it elsewhere. The CPU lists are checked item by
item in offering_links.py, where the catalog they must match is known.
"""

from __future__ import annotations

import uuid as uuid_module
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

_INPUT = ConfigDict(extra="ignore")
NOT_NULL = "This field may not be null."


def _uuid_text(value: Any) -> str:
    """A uuid in Waldur's SlugRelatedField wording; the text itself is kept for the
    "does not exist" message."""
    if value is None:
        raise ValueError(NOT_NULL)
    try:
        uuid_module.UUID(value if isinstance(value, str) else "")
    except ValueError:
        raise ValueError(f"“{value}” is not a valid UUID.") from None
    return str(value)


def _item_list(value: Any) -> list[Any]:
    # DRF's ListField; the items are checked with the catalog (offering_links.py).
    if value is None:
        raise ValueError(NOT_NULL)
    if not isinstance(value, list):
        raise ValueError(f'Expected a list of items but got type "{type(value).__name__}".')
    return value


UUID_SCHEMA = {"type": "string", "format": "uuid"}
LIST_SCHEMA = {"type": "array", "items": {"type": "string"}}
UuidText = Annotated[str, BeforeValidator(_uuid_text), WithJsonSchema(UUID_SCHEMA)]
CpuList = Annotated[list[Any], BeforeValidator(_item_list), WithJsonSchema(LIST_SCHEMA)]
# A value looked up as Waldur's view does (request.data.get): whatever it is, no match is
# the view's 404, never a 400.
LinkUuid = Annotated[Any, WithJsonSchema(UUID_SCHEMA)]

FAMILY_HELP = (
    "List of enabled CPU families: ['x86_64', 'aarch64']. For a catalog with CPU targets "
    "(cpu_targets), each must be one of their cpu_family values"
)
MICRO_HELP = (
    "List of enabled CPU microarchitectures: ['generic', 'amd/zen3']. For a catalog with CPU "
    "targets (cpu_targets), each must be one of their cpu_microarchitecture values"
)
PARTITION_HELP = "A partition of the offering (Waldur's; syncd keeps its uuid only)"


class OfferingCatalogAdd(BaseModel):
    """Waldur's OfferingSoftwareCatalogRequest."""

    model_config = _INPUT

    offering: Annotated[
        Any,
        WithJsonSchema(
            {
                "type": "string",
                "format": "uuid",
                "description": "Ignored: the link is the URL's offering's, as in Waldur",
            }
        ),
    ] = None
    catalog: UuidText
    enabled_cpu_family: CpuList = Field(default_factory=list, description=FAMILY_HELP)
    enabled_cpu_microarchitectures: CpuList = Field(default_factory=list, description=MICRO_HELP)
    partition: UuidText | None = Field(default=None, description=PARTITION_HELP)


class OfferingCatalogPatch(BaseModel):
    """Waldur's PatchedOfferingSoftwareCatalogUpdateRequest: the link, and the fields that
    change (the others stay)."""

    model_config = _INPUT

    offering_catalog_uuid: LinkUuid = None
    # Absent: unchanged. Null is refused (offering_links.py) but for the partition.
    catalog: Annotated[UuidText | None, WithJsonSchema(UUID_SCHEMA)] = None
    enabled_cpu_family: Annotated[CpuList | None, WithJsonSchema(LIST_SCHEMA)] = Field(
        default=None, description=FAMILY_HELP
    )
    enabled_cpu_microarchitectures: Annotated[CpuList | None, WithJsonSchema(LIST_SCHEMA)] = Field(
        default=None, description=MICRO_HELP
    )
    partition: UuidText | None = Field(default=None, description=PARTITION_HELP)


class OfferingCatalogRemove(BaseModel):
    """Waldur's RemoveSoftwareCatalogRequest."""

    model_config = _INPUT

    offering_catalog_uuid: LinkUuid = None


class SoftwareCatalogUuidOut(BaseModel):
    uuid: str = Field(description="The new link's uuid (offering_catalog_uuid)")


class OfferingSoftwareCatalogOut(BaseModel):
    """A link as update_software_catalog answers it (Waldur's OfferingSoftwareCatalog)."""

    uuid: str
    created: str
    modified: str
    offering: str
    catalog: str
    offering_name: str = Field(description="Always empty: offerings are Waldur's")
    catalog_name: str
    catalog_version: str
    enabled_cpu_family: list[str]
    enabled_cpu_microarchitectures: list[str]
    partition: str | None
    partition_name: str = Field(description="Always empty: partitions are Waldur's")


class CatalogSummaryOut(BaseModel):
    uuid: str
    name: str
    version: str
    description: str
    supports_cpu_target_restrictions: bool


class PartitionSummaryOut(BaseModel):
    uuid: str = Field(description="Only the uuid: partitions are Waldur's")


class NestedSoftwareCatalogOut(BaseModel):
    uuid: str = Field(description="The link's uuid (offering_catalog_uuid)")
    catalog: CatalogSummaryOut
    enabled_cpu_family: list[str]
    enabled_cpu_microarchitectures: list[str]
    package_count: int
    partition: PartitionSummaryOut | None


class OfferingCatalogsOut(BaseModel):
    """An offering as syncd knows it: its uuid and its software catalogs (`?field=` picks)."""

    uuid: str | None = None
    software_catalogs: list[NestedSoftwareCatalogOut] | None = None


class LinkNotFoundOut(BaseModel):
    error: str = Field(examples=["Software catalog association not found"])
