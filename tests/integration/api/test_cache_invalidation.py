"""The response cache is cleared by changes of any process (syncd/api/cache_invalidation.py):
a commit on another engine, not through the API nor announced in this process, shows in the
next answers within a short bounded wait though the TTL is long; while the PostgreSQL
listener is down nothing is served from the cache, and caching resumes once it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text, update

from syncd import cache_events
from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.engine import make_engine, make_session_factory
from syncd.db.tables import Catalog, Package
from syncd.sync import sync_catalog
from tests.integration.api.conftest import PACKAGES, FakeAdapter, Sample
from tests.support.records import small_snapshot

TTL = 300.0  # never expires inside a test: only invalidation can explain a fresh answer
BOUND = 3.0  # seconds a change of another process may take to show


@pytest.fixture
def other(db_url: str) -> Iterator[Engine]:
    """Another process's engine: its commits are not announced to the app's process."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def cached(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    adapters: dict[str, FakeAdapter],
    sample: Sample,
) -> Iterator[TestClient]:
    """An app with a long TTL, started after `sample` was committed (its commits would
    otherwise clear the cache at any moment of the test)."""
    app = create_app(
        replace(settings, api_cache_seconds=TTL),
        engine=engine,
        broker=broker,
        adapters=adapters,
        fetcher=object(),
    )
    with TestClient(app) as client:
        _until(lambda: getattr(_cache(client), "live", True), "the watcher vouches")
        yield client


@pytest.fixture
def quiet_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Syncs in this test stand for another process's: no in-process announcement."""
    monkeypatch.setattr(cache_events, "data_changed", lambda: None)


def _cache(client: TestClient) -> Any:
    return client.app.state.response_cache  # type: ignore[attr-defined]


def _until(condition: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"not within {bound} s: {what}"
        time.sleep(0.02)


def _names(client: TestClient, url: str = PACKAGES) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()]


def _rename(engine: Engine, suffix: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(Package).values(name=Package.name + suffix))


def _cached_names(client: TestClient) -> list[str]:
    """The package list, cached (and a second read a hit)."""
    names = _names(client)
    assert len(_cache(client)) == 1
    assert _names(client) == names
    return names


def test_a_commit_by_another_process_shows_though_the_ttl_is_long(
    cached: TestClient, sample: Sample, other: Engine
) -> None:
    before = _cached_names(cached)
    _rename(other, "-elsewhere")
    renamed = [n + "-elsewhere" for n in before]
    _until(lambda: _names(cached) == renamed, "the other engine's rename")
    # Cached again, and cleared again by the next change.
    assert len(_cache(cached)) == 1
    _rename(other, "-2")
    _until(lambda: _names(cached) == [n + "-2" for n in renamed], "the second rename")


def test_an_import_by_the_worker_shows(
    cached: TestClient, sample: Sample, other: Engine, quiet_process: None
) -> None:
    url = f"{PACKAGES}?catalog_uuid={sample.spack.hex}"
    assert _names(cached, url) == ["gromacs"]
    assert _names(cached, url) == ["gromacs"]
    with make_session_factory(other)() as session:
        spack_id = session.execute(select(Catalog.id).where(Catalog.uuid == sample.spack)).scalar()
    assert spack_id is not None
    sync_catalog(other, spack_id, small_snapshot())
    _until(lambda: "gromacs" not in _names(cached, url), "the worker's import")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_no_stale_answer_while_the_listener_is_down(
    cached: TestClient, sample: Sample, other: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncd.api import cache_invalidation  # here: the old code has no such module

    # A long outage: the listener reconnects 1.5 s after it noticed the loss.
    monkeypatch.setattr(cache_invalidation, "RETRY_MIN_SECONDS", 1.5)
    cache = _cache(cached)
    names = _cached_names(cached)
    with other.begin() as conn:
        killed = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": cache_invalidation.APPLICATION_NAME},
        ).all()
    assert killed == [(True,)]
    _until(lambda: not cache.live, "the listener's loss noticed")
    # Down: every change shows at once, nothing is kept.
    for suffix in ("-a", "-b", "-c"):
        _rename(other, suffix)
        names = [n + suffix for n in names]
        assert _names(cached) == names
        assert len(cache) == 0
    # Back: caching resumes, and so does invalidation.
    _until(lambda: cache.live, "the listener back")
    assert _cached_names(cached) == names
    _rename(other, "-d")
    _until(lambda: _names(cached) == [n + "-d" for n in names], "a rename after reconnection")


def test_the_trigger_comes_and_goes_with_the_migration(bare_pg_url: str) -> None:
    from syncd.db.migrate import alembic_config, upgrade

    def triggers() -> set[str]:
        engine = make_engine(bare_pg_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT event_object_table FROM information_schema.triggers "
                        "WHERE trigger_name LIKE '%notify_data_changed'"
                    )
                )
                return {row[0] for row in rows}
        finally:
            engine.dispose()

    upgrade(bare_pg_url)
    assert {"catalog", "package", "version", "target", "sync_run"} <= triggers()
    from alembic import command

    command.downgrade(alembic_config(bare_pg_url), "0015")
    assert triggers() == set()


@pytest.fixture
def bare_pg_url() -> Iterator[str]:
    from tests.support.services import postgres_database

    with postgres_database("syncd_cachebus_mig") as url:
        yield url
