"""A list route's query string parsed without FastAPI's dependency machinery: the filters
model validated by pydantic-core in one call, built once per route from the same declaration
(PackageFilters, VersionFilters) the FastAPI route publishes.

`parse` answers only what it reads exactly as the FastAPI route would; anything else (an
invalid value, `?field=`, a page that is not a plain positive integer) is None, and the
request takes the FastAPI route, which answers it (DRF's 400s and 404s included).
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError

from syncd.api.pagination import _page_size_or_default

# The route parameters beside the filters; `field` is answered by the FastAPI route only.
ORDER, PAGE, PAGE_SIZE, FIELD = "o", "page", "page_size", "field"
# What pydantic reads as a positive int without doubt: no sign, no spaces, no leading zero,
# no underscores; a bigger number is refused by paginated's own bounds.
_PLAIN_PAGE = re.compile(r"[1-9][0-9]{0,17}")


# Query strings whose reading is kept, per route; all are dropped when there are more.
QUERIES_KEPT = 512


@dataclass(frozen=True)
class ListParams:
    filters: BaseModel
    order: list[str] | None
    page: int | None
    page_size: int | None
    # The query string's pairs as Starlette's QueryParams reads them (the Link header's).
    pairs: tuple[tuple[str, str], ...] = ()


def _is_list(annotation: Any) -> bool:
    """A multi-valued field (`list[...] | None`): FastAPI reads every value of its key."""
    if get_origin(annotation) is list:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return False


class ListParser:
    """Built once per route from its filters model."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.multi = frozenset(
            name for name, field in model.model_fields.items() if _is_list(field.annotation)
        )
        self.single = frozenset(model.model_fields) - self.multi
        self._read: dict[bytes, ListParams | None] = {}

    def parse(self, query_string: bytes) -> ListParams | None:
        """Read once per query string: a list's URLs repeat (a portal's pages, a client's
        polling), and the read (parse_qsl, pydantic's validation) was a few percent of a
        page's CPU. Called on the event loop only; the answers are never modified."""
        if query_string in self._read:
            return self._read[query_string]
        found = self._parse(query_string)
        if len(self._read) >= QUERIES_KEPT:  # the query strings are the clients'
            self._read.clear()
        self._read[query_string] = found
        return found

    def _parse(self, query_string: bytes) -> ListParams | None:
        # Starlette's QueryParams parse: latin-1, blank values kept.
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        values: dict[str, Any] = {}
        order: list[str] = []
        page: str | None = None
        size: str | None = None
        for key, value in pairs:
            if key in self.single:
                values[key] = value  # the last one counts (FastAPI's, Django's get)
            elif key in self.multi:
                values.setdefault(key, []).append(value)
            elif key == ORDER:
                order.append(value)
            elif key == PAGE:
                page = value
            elif key == PAGE_SIZE:
                size = value
            elif key == FIELD:
                return None
        if page is not None and not _PLAIN_PAGE.fullmatch(page):
            return None
        try:
            filters = self.model.model_validate(values)
        except ValidationError:
            return None
        size_value = _page_size_or_default(size)
        return ListParams(
            filters=filters,
            order=order or None,
            page=None if page is None else int(page),
            page_size=size_value if isinstance(size_value, int) else None,
            pairs=tuple(pairs),
        )
