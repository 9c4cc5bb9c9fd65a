"""A scriptable in-process adapter and small helpers for the worker tests."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Engine, func, select

from syncd.db.tables import Catalog, Package, Version
from syncd.domain import CatalogInfo, CatalogSnapshot, CatalogType, PackageRecord
from syncd.errors import UpstreamError
from tests.support.records import package, target, version

# Versions every generation holds: a refresh replaces at most half of a catalog's versions,
# as upstreams do, so the shrink guard (SYNCD_MAX_SHRINK_FRACTION=0.5) lets it through.
STABLE_VERSIONS = ("0.1", "0.2")


def packages_of(generation: int, count: int = 4) -> list[PackageRecord]:
    """A small catalog whose content depends on `generation` (so a refresh changes it)."""
    return [
        package(
            f"pkg{i}",
            *(version(v, target("x86_64/generic")) for v in STABLE_VERSIONS),
            version(f"{generation}.{i}", target("x86_64/generic")),
            description=f"package {i}, generation {generation}",
        )
        for i in range(count + generation % 2)
    ]


class FakeAdapter:
    """An adapter whose upstream the test controls.

    `generation` is the upstream's content (and ETag); `snapshot_time` its stated time;
    `failures` are raised by the next fetches, one each; `fetch_delay` slows every fetch
    down; `calls` counts fetches.
    """

    name: ClassVar[str] = "Fake"
    catalog_type: ClassVar[CatalogType] = CatalogType.BINARY_RUNTIME

    def __init__(self, settings: Any = None) -> None:
        self.versions = ["2.0", "1.0"]
        self.generation = 1
        self.failures: list[BaseException] = []
        self.fetch_delay = 0.0
        self.calls = 0
        self.snapshot_time: datetime | None = None  # when "upstream made" the data
        self._lock = threading.Lock()

    def default_source(self) -> str:
        return "https://upstream.example/fake.json"

    def discover(self, fetcher: Any, source: str | None = None) -> list[str]:
        return list(self.versions)

    def fetch_snapshot(
        self,
        fetcher: Any,
        *,
        version: str | None = None,
        source: str | None = None,
        validators: dict[str, Any] | None = None,
    ) -> CatalogSnapshot | None:
        with self._lock:
            self.calls += 1
            failure = self.failures.pop(0) if self.failures else None
            generation = self.generation
        deadline = time.monotonic() + self.fetch_delay
        while time.monotonic() < deadline:  # short sleeps: Dramatiq's time limit can interrupt
            time.sleep(0.02)
        if failure is not None:
            raise failure
        url = source or self.default_source()
        if version is None and not self.versions:
            raise UpstreamError(
                f"Fake upstream at {url} offers no catalog versions", transient=False
            )
        etag = f'"gen-{generation}"'
        if validators and validators.get(url, {}).get("etag") == etag:
            return None
        return CatalogSnapshot(
            catalog=CatalogInfo(
                name=self.name,
                version=version or self.versions[0],
                catalog_type=self.catalog_type,
                description=f"fake catalog, generation {generation}",
                source_url=url,
                snapshot_time=self.snapshot_time,
            ),
            packages=packages_of(generation),
            validators={url: {"etag": etag}},
        )


class ShrinkingAdapter(FakeAdapter):
    """FakeAdapter whose generation 2 upstream lists one package of the five."""

    def fetch_snapshot(self, fetcher: Any, **kwargs: Any) -> CatalogSnapshot | None:
        snapshot = super().fetch_snapshot(fetcher, **kwargs)
        if snapshot is None or self.generation < 2:
            return snapshot
        return dataclasses.replace(snapshot, packages=list(snapshot.packages)[:1])


def catalogs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Catalog).order_by(Catalog.id)).all())


def catalog_row(engine: Engine, **where: Any) -> Any:
    with engine.connect() as conn:
        query = select(Catalog.__table__)
        for key, value in where.items():
            query = query.where(Catalog.__table__.c[key] == value)
        return conn.execute(query).one_or_none()


def contents(engine: Engine, catalog_id: int) -> set[tuple[str, str, str]]:
    """(package, description, version) rows of a catalog: what a reader would see."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Package.name, Package.description, Version.version)
            .join(Version, Version.package_id == Package.id)
            .where(Package.catalog_id == catalog_id)
        ).all()
    return {tuple(r) for r in rows}  # type: ignore[misc]


def expected_contents(generation: int) -> set[tuple[str, str, str]]:
    return {(p.name, p.description, v.version) for p in packages_of(generation) for v in p.versions}


def count_catalogs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Catalog)) or 0)


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns a truthy value; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
