"""Which adapter a command works on.

Resolved before any row is marked: an unknown adapter name must not leave a catalog row behind,
and the CLI checks names with the same functions before it queues anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.errors import NoAdapterError
from syncd.names import same_name


def find_adapter(adapters: Mapping[str, Any], name: str) -> Any:
    """The adapter called `name` (exact, else as syncd.names compares catalog names: trimmed,
    NFKC, case-insensitive); NoAdapterError if none."""
    if name in adapters:
        return adapters[name]
    for key, adapter in adapters.items():
        if same_name(key, name):
            return adapter
    installed = ", ".join(sorted(adapters)) or "none"
    raise NoAdapterError(f"No loader configuration found for {name} (installed: {installed}).")


def adapter_for(adapters: Mapping[str, Any], name: str, catalog_type: str) -> Any:
    """The adapter that handles a catalog row; Waldur's message when none does."""
    adapter = adapters.get(name)
    if adapter is None or str(adapter.catalog_type) != catalog_type:
        raise NoAdapterError(f"No loader configuration found for {name} ({catalog_type}).")
    return adapter
