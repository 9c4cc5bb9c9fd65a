"""Request bodies of the package, version and target writes, validated as Waldur's serializers
validate them (DRF's messages): a parent given as the hyperlink of its object, text trimmed
and length-checked, `homepage` a URL.

Packages take Waldur's writable fields (catalog, name, description, homepage, is_extension).
Waldur's version and target serializers have no writable field; syncd accepts the fields of
the object (`package`/`version` hyperlink, key and content) so that staff can add versions and
targets of their own, a documented extension. Unknown fields are ignored, as DRF does.
"""

from __future__ import annotations

import re
import uuid as uuid_module
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from syncd.api import representation
from syncd.api.schemas import CharField, JsonValue, Text
from syncd.db.tables import Target, Version

_INPUT = ConfigDict(extra="ignore")

NOT_NULL = "This field may not be null."
NO_MATCH = "Invalid hyperlink - No URL match."
INCORRECT_MATCH = "Invalid hyperlink - Incorrect URL match."
DOES_NOT_EXIST = "Invalid hyperlink - Object does not exist."
INVALID_URL = "Enter a valid URL."

_LINK = re.compile(r"^(/api/marketplace-software-[a-z]+/)([^/]+)/$")


def _hyperlink(collection: str) -> Callable[[Any], uuid_module.UUID]:
    """DRF's HyperlinkedRelatedField: an absolute or relative URL of an object of
    `collection`, read as that object's uuid (whether it exists is checked when writing)."""

    def parse(value: Any) -> uuid_module.UUID:
        if value is None or value == "":  # DRF reads "" as null for related fields
            raise ValueError(NOT_NULL)
        if not isinstance(value, str):
            kind = type(value).__name__
            raise ValueError(f"Incorrect type. Expected URL string, received {kind}.")
        path = urlparse(value).path if value.startswith(("http:", "https:")) else value
        found = _LINK.match(path)
        if found is None:
            raise ValueError(NO_MATCH)
        if found.group(1) != collection:
            raise ValueError(INCORRECT_MATCH)
        try:
            return uuid_module.UUID(found.group(2))
        except ValueError:
            raise ValueError(DOES_NOT_EXIST) from None

    return parse


_URI = WithJsonSchema({"type": "string", "format": "uri"})
CatalogLink = Annotated[
    uuid_module.UUID, BeforeValidator(_hyperlink(representation.CATALOGS)), _URI
]
PackageLink = Annotated[
    uuid_module.UUID, BeforeValidator(_hyperlink(representation.PACKAGES)), _URI
]
VersionLink = Annotated[
    uuid_module.UUID, BeforeValidator(_hyperlink(representation.VERSIONS)), _URI
]

# Django's URLValidator, as DRF's URLField applies it: http(s)/ftp(s), a host that is a
# domain name with a top-level domain, localhost or an IP address, an optional port.
_HOST = (
    r"(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]"
    r"|(?:[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?\.)+"
    r"(?:[a-z\u00a1-\uffff-]{2,63}|xn--[a-z0-9]{1,59})\.?)"
)
_URL = re.compile(
    rf"^(?:http|ftp)s?://(?:[^\s:@/]+(?::[^\s:@/]*)?@)?{_HOST}(?::\d{{1,5}})?(?:[/?#]\S*)?\Z",
    re.IGNORECASE,
)


def _url_or_blank(value: str) -> str:
    if value and not _URL.match(value):
        raise ValueError(INVALID_URL)
    return value


def _typed(expected: type, words: str) -> Callable[[Any], Any]:
    """DRF's ListField/DictField type check, worded as they word it."""

    def check(value: Any) -> Any:
        if value is not None and not isinstance(value, expected):
            raise ValueError(f'Expected {words} but got type "{type(value).__name__}".')
        return value

    return check


Homepage = Annotated[CharField, AfterValidator(_url_or_blank)]
JsonObject = Annotated[
    JsonValue,
    BeforeValidator(_typed(dict, "a dictionary of items")),
    WithJsonSchema({"type": "object", "additionalProperties": {}}),
]
JsonList = Annotated[
    JsonValue,
    BeforeValidator(_typed(list, "a list of items")),
    WithJsonSchema({"type": "array", "items": {}}),
]
TextList = Annotated[list[Text], BeforeValidator(_typed(list, "a list of items"))]


# What the version objects derive from a version's metadata and dependencies (`module`,
# `required_modules`, `toolchain`...) has a shape (schemas.ModuleOut): hand-written values
# must have it too, or the object would break its own schema.
_MODULE_FIELDS = ("full_module_name", "module_name", "module_version")
MODULE_SHAPE = "an object whose full_module_name, module_name and module_version are strings"


def _is_module(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(value.get(name, ""), str) for name in _MODULE_FIELDS
    )


def _version_metadata(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "module" in value and not _is_module(value["module"]):
        raise ValueError(f'"module" must be {MODULE_SHAPE}.')
    required = value.get("required_modules", [])
    if not isinstance(required, list) or not all(_is_module(item) for item in required):
        raise ValueError(f'"required_modules" must be a list, each item {MODULE_SHAPE}.')
    if not isinstance(value.get("toolchain", {}), dict):
        raise ValueError('"toolchain" must be an object.')
    return value


def _dependencies(value: Any) -> Any:
    if isinstance(value, list) and not all(
        isinstance(item, str) or _is_module(item) for item in value
    ):
        raise ValueError(f"Each dependency must be a package name or {MODULE_SHAPE}.")
    return value


VersionMetadata = Annotated[JsonObject, AfterValidator(_version_metadata)]
Dependencies = Annotated[JsonList, AfterValidator(_dependencies)]


def _limit(column: Any) -> int:
    return int(column.type.length)


_VERSION = Version.__table__.c
_TARGET = Target.__table__.c
NAME_MAX = 200  # Waldur's SoftwarePackage.name
HOMEPAGE_MAX = 200  # Waldur's URLField default


class SoftwarePackageRequest(BaseModel):
    """POST and PUT (a PUT changes the fields it sends; catalog and name are required)."""

    model_config = _INPUT

    catalog: CatalogLink
    name: CharField = Field(min_length=1, max_length=NAME_MAX)
    description: CharField = ""
    homepage: Homepage | None = Field(default=None, max_length=HOMEPAGE_MAX)
    is_extension: bool = Field(
        default=False, description="Whether this package is an extension of another package"
    )


class PatchedSoftwarePackageRequest(BaseModel):
    model_config = _INPUT

    catalog: CatalogLink | None = None
    name: CharField | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    description: CharField | None = None
    homepage: Homepage | None = Field(default=None, max_length=HOMEPAGE_MAX)
    is_extension: bool | None = None


class SoftwareVersionRequest(BaseModel):
    """POST and PUT: a version of a package, made by hand (syncd's extension)."""

    model_config = _INPUT

    package: PackageLink
    version: CharField = Field(min_length=1, max_length=_limit(_VERSION.version))
    module_version: CharField = Field(default="", max_length=_limit(_VERSION.module_version))
    release_date: date | None = None
    dependencies: Dependencies = Field(default_factory=list)
    metadata: VersionMetadata = Field(default_factory=dict)


class PatchedSoftwareVersionRequest(BaseModel):
    model_config = _INPUT

    package: PackageLink | None = None
    version: CharField | None = Field(
        default=None, min_length=1, max_length=_limit(_VERSION.version)
    )
    module_version: CharField | None = Field(
        default=None, max_length=_limit(_VERSION.module_version)
    )
    release_date: date | None = None
    dependencies: Dependencies | None = None
    metadata: VersionMetadata | None = None


class SoftwareTargetRequest(BaseModel):
    """POST and PUT: a target of a version, made by hand (syncd's extension)."""

    model_config = _INPUT

    version: VersionLink
    target_type: CharField = Field(min_length=1, max_length=_limit(_TARGET.target_type))
    target_name: CharField = Field(min_length=1, max_length=_limit(_TARGET.target_name))
    target_subtype: CharField = Field(default="", max_length=_limit(_TARGET.target_subtype))
    location: CharField = Field(default="", max_length=_limit(_TARGET.location))
    metadata: JsonObject = Field(default_factory=dict)
    gpu_architectures: TextList = Field(default_factory=list)


class PatchedSoftwareTargetRequest(BaseModel):
    model_config = _INPUT

    version: VersionLink | None = None
    target_type: CharField | None = Field(
        default=None, min_length=1, max_length=_limit(_TARGET.target_type)
    )
    target_name: CharField | None = Field(
        default=None, min_length=1, max_length=_limit(_TARGET.target_name)
    )
    target_subtype: CharField | None = Field(
        default=None, max_length=_limit(_TARGET.target_subtype)
    )
    location: CharField | None = Field(default=None, max_length=_limit(_TARGET.location))
    metadata: JsonObject | None = None
    gpu_architectures: TextList | None = None


# Fields that accept an explicit null (model fields with null=True); any other is refused.
NULLABLE = frozenset({"homepage", "release_date"})


def sent_values(body: BaseModel) -> dict[str, Any]:
    """The fields the client sent, as the hand write takes them; an explicit null where the
    field is not nullable is DRF's 400."""
    values = {name: getattr(body, name) for name in body.model_fields_set}
    for name, value in values.items():
        if value is None and name not in NULLABLE:
            raise NullField(name)
    return values


class NullField(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.field = name
