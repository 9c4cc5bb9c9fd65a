"""Query building blocks shared by the list endpoints.

The JSON helpers are the one place that knows how PostgreSQL (JSONB) and SQLite (JSON1)
differ: list membership, containment and emptiness are spelled differently on each.
Ordering parses the `o` parameter the way django-filter's OrderingFilter does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import UnaryExpression

from syncd.api.errors import field_error
from syncd.domain import CPU_TARGET_TYPE as CPU_TARGET_TYPE


def json_array_contains(column: Any, value: str, dialect: str) -> ColumnElement[bool]:
    """`value` is an element of the JSON list stored in `column`."""
    if dialect == "postgresql":
        # @> uses the JSONB containment operator (GIN-indexable).
        return type_coerce(column, JSONB).contains([value])
    elements = func.json_each(column).table_valued("value").alias("elements")
    return exists(select(1).select_from(elements).where(elements.c.value == value))


def json_list_at_contains(column: Any, key: str, value: str, dialect: str) -> ColumnElement[bool]:
    """The JSON list under `key` of the object in `column` has `value` as an element (Django's
    `column__key__contains=[value]`)."""
    if dialect == "postgresql":
        return type_coerce(column, JSONB)[key].contains([value])
    elements = _list_at(column, key)
    return exists(select(1).select_from(elements).where(elements.c.value == value))


def json_list_at_has_object(
    column: Any, key: str, field: str, value: str, dialect: str
) -> ColumnElement[bool]:
    """The JSON list under `key` of the object in `column` has an object whose `field` is
    `value` (Django's `column__key__contains=[{field: value}]`)."""
    if dialect == "postgresql":
        return type_coerce(column, JSONB)[key].contains([{field: value}])
    elements = _list_at(column, key)
    return exists(
        select(1)
        .select_from(elements)
        .where(
            elements.c.type == "object",
            func.json_extract(elements.c.value, f"$.{field}") == value,
        )
    )


def _list_at(column: Any, key: str) -> Any:
    """SQLite: the elements of the list under `key` (none when it is absent or not a list,
    as JSONB containment finds nothing there)."""
    path = f'$."{key}"'
    listed = func.iif(func.json_type(column, path) == "array", column, None)
    return func.json_each(listed, path).table_valued("value", "type").alias("elements")


def json_array_nonempty(column: Any, dialect: str) -> ColumnElement[bool]:
    """The JSON list stored in `column` has at least one element."""
    if dialect == "postgresql":
        return func.jsonb_array_length(type_coerce(column, JSONB)) > 0
    return func.json_array_length(column) > 0


def json_text(column: Any, *path: str) -> ColumnElement[str]:
    """The text at `path` inside a JSON object column (NULL when absent), on both dialects."""
    return column[path].as_string()  # type: ignore[no-any-return]


def icontains(column: Any, value: str) -> ColumnElement[bool]:
    # autoescape: a client's % or _ is a literal character, not a wildcard.
    return column.icontains(value, autoescape=True)  # type: ignore[no-any-return]


def iexact(column: Any, value: str) -> ColumnElement[bool]:
    return func.lower(column) == value.lower()


# The most `o` terms a list accepts: more than any list has keys (6), fewer than the ORDER BY
# terms that cost the database a sort key each (SQLite refuses a few thousand outright).
MAX_ORDER_TERMS = 10


def parse_ordering(
    values: Sequence[str] | None, allowed: Mapping[str, Sequence[Any]] | Mapping[str, Any]
) -> list[UnaryExpression[Any]] | None:
    """`o=name,-version` into ORDER BY clauses; None when absent or empty.

    Repeated keys (`o=name&o=-version`): the last one counts, as django-filter's
    OrderingFilter reads one value (Django's QueryDict.get) and splits it at commas.
    `allowed` maps a public field name to the columns it sorts by (ascending form). An unknown
    field, or more than MAX_ORDER_TERMS terms, is a 400 in DRF's words.
    """
    last = values[-1] if values else ""
    names = [part.strip() for part in last.split(",") if part.strip()]
    if not names:
        return None
    if len(names) > MAX_ORDER_TERMS:
        # DRF's ListField wording.
        raise field_error("o", f"Ensure this field has no more than {MAX_ORDER_TERMS} elements.")
    clauses: list[UnaryExpression[Any]] = []
    for name in names:
        descending = name.startswith("-")
        key = name[1:] if descending else name
        if key not in allowed:
            raise field_error(
                "o", f"Select a valid choice. {name} is not one of the available choices."
            )
        for column in allowed[key]:
            clauses.append(column.desc() if descending else column.asc())
    return clauses
