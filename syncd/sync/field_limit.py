"""The field limit: no upstream text value is stored longer than SYNCD_MAX_FIELD_CHARS.

Applied where the sync turns records into rows, so it holds for every adapter, plugins
included: a package's description, each string of its lists, and every string (keys too) at
any depth of a JSON field (metadata, dependencies, ...), and the catalog's own description
and metadata. A longer value is cut to the limit and named in update_errors as a warning;
the sync still succeeds. Without it one 64 MiB description was stored and then sent in full
in every anonymous list response that held its package.

Fields with a column length of their own (names, versions, homepages, target fields) keep
their rule: a record that does not fit is left out (syncd/sync/records.py).
"""

from __future__ import annotations

from typing import Any


def cut_text(value: str, limit: int) -> tuple[str, bool]:
    """`value` cut to `limit` characters, and whether it was cut."""
    return (value[:limit], True) if len(value) > limit else (value, False)


def cut_strings(value: Any, limit: int) -> tuple[Any, bool]:
    """A JSON value with every string (dict keys too) cut to `limit` characters, and
    whether any was; an unchanged value is returned as it is, not copied.

    Recursive, which is safe here: adapters refuse upstream JSON nested deeper than 32 levels
    (adapters/json_stream.py), and records are plain JSON values."""
    if isinstance(value, str):
        return cut_text(value, limit)
    if isinstance(value, dict):
        cut_any = False
        items = []
        for key, item in value.items():
            new_key, key_cut = cut_text(key, limit) if isinstance(key, str) else (key, False)
            new_item, item_cut = cut_strings(item, limit)
            cut_any = cut_any or key_cut or item_cut
            items.append((new_key, new_item))
        return (dict(items), True) if cut_any else (value, False)
    if isinstance(value, list | tuple):
        results = [cut_strings(item, limit) for item in value]
        if any(cut for _item, cut in results):
            return [item for item, _cut in results], True
        return value, False
    return value, False
