"""discover: what each registered adapter offers upstream, next to what the database has.

Upstream answers are cached per adapter for `discover_cache_seconds`, and only one thread
asks a given upstream at a time (the others wait for its answer), so a burst of requests
downloads nothing twice. An upstream that cannot be reached gives `latest_version: null` for
its adapter only, and is asked again sooner than a good answer expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from syncd.db.tables import Catalog
from syncd.logging import get_logger
from syncd.versioning import compare_versions, version_key

log = get_logger(__name__)

# A failed upstream is retried after this share of the TTL: soon, but not on every request.
FAILURE_TTL_SHARE = 0.1


@dataclass
class _Entry:
    versions: list[str] | None
    expires: float


class DiscoverCache:
    """Per-adapter TTL cache of `adapter.discover()` results, single-flight per adapter."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = float(ttl_seconds)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock_for(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def _fresh(self, name: str) -> _Entry | None:
        entry = self._entries.get(name)
        if entry is not None and entry.expires > self._clock():
            return entry
        return None

    def versions(self, adapter: Any, fetcher: Any) -> list[str] | None:
        """The adapter's upstream versions, latest first; None when upstream failed."""
        name = adapter.name
        entry = self._fresh(name)
        if entry is not None:
            return entry.versions
        with self._lock_for(name):
            entry = self._fresh(name)  # another thread may have asked while we waited
            if entry is not None:
                return entry.versions
            versions: list[str] | None
            try:
                versions = list(adapter.discover(fetcher))
                ttl = self.ttl
            except Exception as exc:  # any upstream failure is this adapter's null only
                log.warning("discover_failed", adapter=name, error=str(exc))
                versions, ttl = None, self.ttl * FAILURE_TTL_SHARE
            self._entries[name] = _Entry(versions, self._clock() + ttl)
            return versions

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()


def _newest(versions: list[str]) -> str | None:
    return max(versions, key=version_key) if versions else None


def _is_newer(candidate: str, current: str) -> bool:
    return compare_versions(candidate, current) > 0


def existing_versions(session: Session, name: str, catalog_type: str) -> list[str]:
    """The versions of the adapter's catalogs, the most recently modified first (names
    compared as the unique index compares them: case-insensitive)."""
    rows = session.execute(
        select(Catalog.version)
        .where(func.lower(Catalog.name) == func.lower(name), Catalog.catalog_type == catalog_type)
        .order_by(Catalog.modified.desc(), Catalog.id.desc())
    )
    return [version for (version,) in rows]


def discover_entry(adapter: Any, latest: str | None, existing: list[str]) -> dict[str, Any]:
    """`existing_version` is Waldur's: the most recently modified catalog's. `update_available`
    is syncd's: upstream's latest is newer, by the adapter's version semantics, than every
    catalog held (Waldur: latest != existing_version). So it is false where Waldur says true
    when the latest is already imported while an older catalog was modified since, and when
    what is held is newer than upstream's latest (a mirror ahead, an upstream rolled back)."""
    newest = _newest(existing)
    return {
        "name": adapter.name,
        "catalog_type": str(adapter.catalog_type),
        "latest_version": latest,
        "existing": bool(existing),
        "existing_version": existing[0] if existing else None,
        "update_available": bool(
            latest is not None and newest is not None and _is_newer(latest, newest)
        ),
    }


def discover(
    engine: Engine, adapters: Mapping[str, Any], fetcher: Any, *, cache: DiscoverCache
) -> list[dict[str, Any]]:
    """One entry per registered adapter, sorted by name."""
    names = sorted(adapters)
    # Upstreams are asked side by side (a slow one delays the answer by its own time only),
    # and before the database: no connection is held while an upstream is slow.
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        found = pool.map(lambda name: latest_version(adapters[name], fetcher, cache=cache), names)
        latest = dict(zip(names, found, strict=True))
    with Session(engine) as session:
        return [
            discover_entry(
                adapters[name],
                latest[name],
                existing_versions(session, adapters[name].name, str(adapters[name].catalog_type)),
            )
            for name in names
        ]


def latest_version(adapter: Any, fetcher: Any, *, cache: DiscoverCache) -> str | None:
    versions = cache.versions(adapter, fetcher)
    return versions[0] if versions else None
