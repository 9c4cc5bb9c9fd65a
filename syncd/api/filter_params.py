"""Query parameters parsed as Waldur's filters (django-filter) parse them.

django-filter reads a filter's value from the query string and cleans it with a Django form
field; what it does with odd values is the reference's behaviour, and clients rely on it:
- a boolean (BooleanWidget) is true/1 or false/0 in any case; any other value, empty
  included, means "no filter", never a 400;
- an empty value of a typed filter (uuid, choice, date, time) means "no filter";
- a time without an offset is UTC (Waldur's TIME_ZONE), one with an offset is converted;
- a value that is not one of a choice filter's choices is a 400 in Django's words.

Repeated keys: a single-valued filter reads the last one (Django's QueryDict.get); a
multi-valued filter (FilterValues) reads them all and matches any of them.
"""

from __future__ import annotations

import uuid as uuid_module
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from syncd.api.schemas import FilterText
from syncd.domain import CatalogType

# django-filter's BooleanWidget.value_from_datadict, after lower().
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _loose_bool(value: Any) -> Any:
    if isinstance(value, str):
        return _BOOLEANS.get(value.lower())
    return value


def _empty_is_absent(value: Any) -> Any:
    return None if value == "" else value


def _without_empty(values: list[str] | None) -> list[str] | None:
    kept = [value for value in values or () if value]
    return kept or None


# The most values one multi-valued filter takes: more than the CPU targets an EESSI stack
# builds for (15 in 2025.06), few enough that the IN list stays a trivial cost.
MAX_FILTER_VALUES = 50

FilterBool = Annotated[bool | None, BeforeValidator(_loose_bool)]
FilterUUID = Annotated[uuid_module.UUID | None, BeforeValidator(_empty_is_absent)]
FilterDate = Annotated[date | None, BeforeValidator(_empty_is_absent)]
INVALID_DATETIME = "Enter a valid date/time."  # Django's DateTimeField


def _in_utc(value: datetime | None) -> datetime | None:
    """A naive time is UTC (Waldur's TIME_ZONE); an aware one is converted to UTC, the form
    both databases compare (SQLite compares the stored text)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before datetime.min in UTC
        raise ValueError(INVALID_DATETIME) from None


FilterDateTime = Annotated[
    datetime | None, BeforeValidator(_empty_is_absent), AfterValidator(_in_utc)
]
# An unknown value is a 400 with Django's ChoiceField message (see errors._message).
FilterCatalogType = Annotated[CatalogType | None, BeforeValidator(_empty_is_absent)]
# Repeated keys (`?cpu_family=x86_64&cpu_family=aarch64`, as Waldur's generated clients send
# a list); empty values are dropped, and none left is no filter.
FilterValues = Annotated[
    list[FilterText] | None,
    Field(max_length=MAX_FILTER_VALUES),
    AfterValidator(_without_empty),
]
