"""Request bodies and the response shapes published in the OpenAPI document.

Responses are rendered by `representation` (plain dicts, no per-row validation); these models
describe them so that generated clients and schemathesis know what to expect. Unknown request
fields are ignored, as DRF does.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from syncd.domain import CatalogType
from syncd.names import normalize_name

_INPUT = ConfigDict(extra="ignore")

NULL_CHARACTERS = "Null characters are not allowed."


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded: refuse both
    # here (DRF's wording) instead of failing in the database with a 500.
    if "\x00" in value:
        raise ValueError(NULL_CHARACTERS)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("Invalid unicode characters are not allowed.") from None
    return value


def _json(value: Any) -> Any:
    """A JSON value PostgreSQL's JSONB can store: no NUL, no lone surrogate, no NaN/Infinity."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("NaN and Infinity are not valid JSON numbers.")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _trim(value: Any) -> Any:
    # DRF's CharField (and URLField) trims surrounding whitespace before any other check
    # (trim_whitespace=True): "  x " is "x", and "   " is blank.
    return value.strip() if isinstance(value, str) else value


Text = Annotated[str, AfterValidator(_text)]
# The longest value a text filter (a query parameter) accepts: the longest stored name (a
# package's, 200) fits. Matching costs the database time in proportion to the value's length
# on every row it looks at (a 2,000-character `path` took 14 s on 200,000 targets).
MAX_FILTER_CHARS = 200
FilterText = Annotated[str, StringConstraints(max_length=MAX_FILTER_CHARS), AfterValidator(_text)]

# A request body's text field, as Waldur's serializers declare them: CharField or a subclass.
CharField = Annotated[str, BeforeValidator(_trim), AfterValidator(_text)]


def _catalog_text(value: Any) -> Any:
    # syncd.names: trimmed as DRF trims, NFKC-normalised, no invisible or bidirectional
    # formatting characters. Before the length checks, which then count the normalised text.
    return normalize_name(value) if isinstance(value, str) else value


# A catalog's name or version: the CharField above, normalised so that names that look alike
# are one name (the API, the CLI and the messages apply the same rule).
CatalogText = Annotated[str, BeforeValidator(_catalog_text), AfterValidator(_text)]

# Waldur's SoftwareCatalog.source_url is a models.URLField: Django's default max_length.
MAX_SOURCE_URL_CHARS = 200
JsonValue = Annotated[Any, AfterValidator(_json)]


class CatalogCreate(BaseModel):
    model_config = _INPUT

    name: CatalogText = Field(
        min_length=1,
        max_length=100,
        description="Catalog name (e.g. EESSI, Spack); names that differ only in case, "
        "width or surrounding spaces are the same name",
    )
    version: CatalogText = Field(
        min_length=1, max_length=50, description="Catalog version (e.g. 2023.06)"
    )
    catalog_type: CatalogType = CatalogType.BINARY_RUNTIME
    source_url: CharField = Field(default="", max_length=MAX_SOURCE_URL_CHARS)
    description: CharField = ""
    metadata: JsonValue = None
    auto_update_enabled: bool = True
    update_errors: CharField = ""


class CatalogPatch(BaseModel):
    """PATCH: every field optional, only the ones sent change."""

    model_config = _INPUT

    name: CatalogText | None = Field(default=None, min_length=1, max_length=100)
    version: CatalogText | None = Field(default=None, min_length=1, max_length=50)
    catalog_type: CatalogType | None = None
    source_url: CharField | None = Field(default=None, max_length=MAX_SOURCE_URL_CHARS)
    description: CharField | None = None
    metadata: JsonValue = None
    auto_update_enabled: bool | None = None
    update_errors: CharField | None = None


FORCE_DESCRIPTION = (
    "Accept, this once, an upstream snapshot older than the one the catalog holds (a stale "
    "mirror) or one that would remove more than SYNCD_MAX_SHRINK_FRACTION of the catalog's "
    "packages or versions (a truncated upstream); without it either is refused and "
    "update_errors says why"
)


class ImportRequest(BaseModel):
    model_config = _INPUT

    name: CatalogText = Field(
        min_length=1, max_length=100, description="A registered adapter (EESSI, Spack, ...)"
    )
    version: CatalogText | None = Field(
        default=None,
        max_length=50,
        description="Upstream version; latest if omitted (Waldur's body: then a catalog of "
        "this name and type must not exist yet). A version that does not exist yet imports "
        "another catalog of this name (a syncd extension)",
    )
    source_url: CharField | None = Field(default=None, max_length=MAX_SOURCE_URL_CHARS)
    source: CharField | None = Field(
        default=None, max_length=MAX_SOURCE_URL_CHARS, description="Alias of source_url"
    )
    force: bool = Field(default=False, description=FORCE_DESCRIPTION)


class UpdateRequest(BaseModel):
    """The optional body of update_catalog (Waldur's takes none; other fields are ignored)."""

    model_config = _INPUT

    force: bool = Field(default=False, description=FORCE_DESCRIPTION)


class CatalogOut(BaseModel):
    url: str
    uuid: str
    created: datetime
    modified: datetime
    name: str
    version: str
    catalog_type: CatalogType
    catalog_type_display: str
    source_url: str
    description: str
    metadata: Any
    auto_update_enabled: bool
    last_update_attempt: datetime | None
    last_successful_update: datetime | None
    update_errors: str
    package_count: int
    version_count: int
    target_count: int
    supports_cpu_target_restrictions: bool = Field(
        json_schema_extra={"readOnly": True},
        description="True for a binary runtime: its versions can be restricted by CPU target",
    )


LOCAL_DESCRIPTION = (
    "syncd: made by hand through the API (syncs leave it alone), not synced from upstream"
)


class NestedPackageOut(BaseModel):
    uuid: str
    name: str
    url: str
    versions: list[str]


class NestedTargetOut(BaseModel):
    uuid: str
    target_type: str
    target_name: str
    target_subtype: str
    location: str
    metadata: Any
    gpu_architectures: list[str]


class ModuleOut(BaseModel):
    """An environment module as EESSI names it, stored as Waldur stores it. Every field is
    optional: a version without a module (Spack) has `module` {}."""

    full_module_name: str = Field(default="", examples=["ATK/2.38.0-GCCcore-12.3.0"])
    module_name: str = Field(default="", examples=["ATK"])
    module_version: str = Field(default="", examples=["2.38.0-GCCcore-12.3.0"])


class _VersionFields(BaseModel):
    module: ModuleOut
    modulename: str
    required_modules: list[ModuleOut] = Field(
        description="The modules loaded with this one, in upstream order (first: EESSI/<stack>)"
    )
    extensions: list[Any]
    toolchain: dict[str, Any]
    toolchain_families_compatibility: list[Any]


class NestedVersionOut(_VersionFields):
    uuid: str
    version: str
    module_version: str
    release_date: date | None
    targets: list[NestedTargetOut]


class PackageOut(BaseModel):
    url: str
    uuid: str
    created: datetime
    modified: datetime
    catalog: str
    catalog_uuid: str
    name: str
    description: str
    homepage: str | None
    categories: Any
    licenses: Any
    maintainers: Any
    is_extension: bool
    is_local: bool = Field(json_schema_extra={"readOnly": True}, description=LOCAL_DESCRIPTION)
    parent_softwares: list[NestedPackageOut]
    extensions: list[NestedPackageOut] = Field(
        description="Extension packages, by name, each with its versions; in lists too, as Waldur's"
    )
    catalog_name: str
    catalog_version: str
    catalog_type: str
    catalog_type_display: str
    version_count: int
    extension_count: int
    versions: list[NestedVersionOut] = Field(
        description="Versions oldest first, each with its targets newest first; in lists too, as "
        "Waldur's (`?field=` without `versions` leaves them out)"
    )


class VersionOut(_VersionFields):
    url: str
    uuid: str
    created: datetime
    modified: datetime
    package: str
    package_uuid: str
    package_name: str
    catalog_uuid: str
    catalog_type: str
    version: str
    module_version: str
    release_date: date | None
    dependencies: list[ModuleOut | str] = Field(
        description="EESSI: the required modules other than the version's own (objects); "
        "Spack: the package's dependency names (strings)"
    )
    metadata: Any
    target_count: int
    is_local: bool = Field(json_schema_extra={"readOnly": True}, description=LOCAL_DESCRIPTION)


class TargetOut(NestedTargetOut):
    url: str
    created: datetime
    modified: datetime
    version: str
    version_uuid: str
    package_uuid: str
    package_name: str
    is_local: bool = Field(json_schema_extra={"readOnly": True}, description=LOCAL_DESCRIPTION)


class CpuTargetOut(BaseModel):
    cpu_family: str
    cpu_microarchitecture: str
    full_arch: str


class DiscoverOut(BaseModel):
    name: str
    catalog_type: str
    latest_version: str | None
    existing: bool
    existing_version: str | None
    update_available: bool


class ImportAccepted(BaseModel):
    status: str = "importing"
    name: str
    version: str | None = Field(
        default=None, description="Present only when the request named a version"
    )


class UpdateAccepted(BaseModel):
    status: str = "updating"
    catalog_uuid: str


class Detail(BaseModel):
    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request: {field: [messages]} or [messages]"},
    401: {"model": Detail, "description": "No valid token"},
    404: {"model": Detail, "description": "Not found (or a page past the end)"},
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    403: {"model": Detail, "description": "Not staff"},
}
LIST_HEADERS = {
    "X-Result-Count": {
        "description": "Number of objects matching the filters",
        "schema": {"type": "integer"},
    },
    "Link": {
        "description": "rel first/prev/next/last pages, where they exist",
        "schema": {"type": "string"},
    },
}
HEAD_OK = {"description": "Headers only, no body", "headers": LIST_HEADERS}
