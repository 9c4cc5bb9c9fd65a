"""syncd.discovery: the per-adapter TTL cache and the entries discover builds."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine

from syncd.discovery import FAILURE_TTL_SHARE, DiscoverCache, discover
from syncd.domain import CatalogType
from tests.integration.api.conftest import FakeAdapter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_expires_after_ttl() -> None:
    clock = Clock()
    cache = DiscoverCache(60, clock=clock)
    adapter = FakeAdapter("EESSI", CatalogType.BINARY_RUNTIME, ["2025.06"])
    assert cache.versions(adapter, None) == ["2025.06"]
    clock.now += 59
    assert cache.versions(adapter, None) == ["2025.06"]
    assert adapter.calls == 1
    clock.now += 2
    adapter.versions = ["2026.06", "2025.06"]
    assert cache.versions(adapter, None) == ["2026.06", "2025.06"]
    assert adapter.calls == 2


def test_failures_are_retried_sooner() -> None:
    clock = Clock()
    cache = DiscoverCache(100, clock=clock)
    adapter = FakeAdapter("Spack", CatalogType.SOURCE_PACKAGE, ["1.0"], fail=True)
    assert cache.versions(adapter, None) is None
    clock.now += 100 * FAILURE_TTL_SHARE - 1
    assert cache.versions(adapter, None) is None
    assert adapter.calls == 1
    adapter.fail = False
    clock.now += 2
    assert cache.versions(adapter, None) == ["1.0"]


class SlowAdapter(FakeAdapter):
    def discover(self, fetcher: Any, source: str | None = None) -> list[str]:
        time.sleep(0.2)
        return super().discover(fetcher, source)


def test_a_burst_asks_upstream_once() -> None:
    cache = DiscoverCache(60)
    adapter = SlowAdapter("EESSI", CatalogType.BINARY_RUNTIME, ["2025.06"])
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.versions(adapter, None)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [["2025.06"]] * 8
    assert adapter.calls == 1


def test_discover_without_catalogs(engine: Engine) -> None:
    adapters = {
        "Spack": FakeAdapter("Spack", CatalogType.SOURCE_PACKAGE, ["2026.07.01"]),
        "EESSI": FakeAdapter("EESSI", CatalogType.BINARY_RUNTIME, [], fail=True),
    }
    entries = discover(engine, adapters, None, cache=DiscoverCache(60))
    assert entries == [
        {
            "name": "EESSI",
            "catalog_type": "binary_runtime",
            "latest_version": None,
            "existing": False,
            "existing_version": None,
            "update_available": False,
        },
        {
            "name": "Spack",
            "catalog_type": "source_package",
            "latest_version": "2026.07.01",
            "existing": False,
            "existing_version": None,
            "update_available": False,
        },
    ]
