"""The response cache of anonymous reads (syncd/api/cache.py): hits replay the whole answer,
entries expire, tokens bypass it, writes through the API and syncs in this process clear it.

Data is changed with SQL behind the API's back, so a stale answer proves a cache hit: these
apps watch no other process's commits (`watch_changes` returns None; that watching is
test_cache_invalidation.py's).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from syncd import cache_events
from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.tables import Catalog, Package
from syncd.sync import sync_catalog
from tests.integration.api.conftest import CATALOGS, PACKAGES, FakeAdapter, Sample
from tests.support.records import small_snapshot

TTL = 30.0  # long enough never to expire inside a test, unless the test is about expiry


def _app(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    adapters: dict[str, FakeAdapter],
    ttl: float,
) -> FastAPI:
    cached = replace(settings, api_cache_seconds=ttl)
    return create_app(
        cached,
        engine=engine,
        broker=broker,
        adapters=adapters,
        fetcher=object(),
        watch_changes=lambda _engine, _cache: None,
    )


@pytest.fixture
def cached(
    settings: Settings, engine: Engine, broker: StubBroker, adapters: dict[str, FakeAdapter]
) -> Iterator[TestClient]:
    with TestClient(_app(settings, engine, broker, adapters, TTL)) as test_client:
        yield test_client


def _rename_packages(factory: sessionmaker[Session], suffix: str) -> None:
    with factory() as session:
        session.execute(update(Package).values(name=Package.name + suffix))
        session.commit()


def _cached_then_renamed(
    client: TestClient, factory: sessionmaker[Session], suffix: str
) -> list[str]:
    """Cache the anonymous package list, then rename every package behind the API's back;
    returns the cached names."""
    before = _names(client.get(PACKAGES))
    _rename_packages(factory, suffix)
    return before


def _names(response: object) -> list[str]:
    return [item["name"] for item in response.json()]  # type: ignore[attr-defined]


def test_a_hit_replays_body_and_headers(
    cached: TestClient, sample: Sample, session_factory: sessionmaker[Session]
) -> None:
    url = f"{PACKAGES}?page_size=1&page=2"
    first = cached.get(url)
    assert first.status_code == 200
    assert first.headers["X-Result-Count"] == "4"
    assert 'rel="next"' in first.headers["Link"]
    _rename_packages(session_factory, "-renamed")
    second = cached.get(url)
    assert second.status_code == 200
    assert second.content == first.content  # the old names: served from the cache
    for header in ("X-Result-Count", "Link", "content-type", "content-length"):
        assert second.headers[header] == first.headers[header]
    # Another query string is another entry.
    assert all(n.endswith("-renamed") for n in _names(cached.get(f"{PACKAGES}?page_size=2")))
    # HEAD is kept apart from GET, with the same headers and no body.
    head = cached.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["X-Result-Count"] == "4"


def test_entries_expire(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    adapters: dict[str, FakeAdapter],
    sample: Sample,
    session_factory: sessionmaker[Session],
) -> None:
    with TestClient(_app(settings, engine, broker, adapters, 0.3)) as client:
        before = _names(client.get(PACKAGES))
        _rename_packages(session_factory, "-x")
        assert _names(client.get(PACKAGES)) == before
        time.sleep(0.4)
        assert _names(client.get(PACKAGES)) == [n + "-x" for n in before]


def test_a_token_bypasses_the_cache(
    cached: TestClient,
    sample: Sample,
    user: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    before = _cached_then_renamed(cached, session_factory, "-y")
    assert _names(cached.get(PACKAGES, headers=user)) == [n + "-y" for n in before]
    # Anonymous: still the answer cached before; the token holder's was not stored for it.
    assert _names(cached.get(PACKAGES)) == before


def test_only_200_answers_are_kept(cached: TestClient, sample: Sample) -> None:
    cache = cached.app.state.response_cache  # type: ignore[attr-defined]
    assert cached.get(f"{PACKAGES}nope/").status_code == 404
    assert cached.get(f"{PACKAGES}?o=nope").status_code == 400
    assert len(cache) == 0
    assert cached.get(f"{CATALOGS}{sample.eessi.hex}/").status_code == 200
    assert len(cache) == 1


def test_a_write_through_the_api_clears_it(
    cached: TestClient,
    sample: Sample,
    staff: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    catalogs = cached.get(CATALOGS).json()
    before = _cached_then_renamed(cached, session_factory, "-z")
    patched = cached.patch(
        f"{CATALOGS}{sample.spack.hex}/", json={"description": "new"}, headers=staff
    )
    assert patched.status_code == 200, patched.text
    assert _names(cached.get(PACKAGES)) == [n + "-z" for n in before]
    after = {c["uuid"]: c["description"] for c in cached.get(CATALOGS).json()}
    assert (
        after[sample.spack.hex]
        == "new"
        != {c["uuid"]: c for c in catalogs}[sample.spack.hex]["description"]
    )
    # A refused write changed nothing and clears nothing: anyone could send one.
    _rename_packages(session_factory, "-w")
    for method in ("DELETE", "POST", "PATCH"):
        assert cached.request(method, f"{CATALOGS}{sample.spack.hex}/").status_code in (401, 405)
    assert _names(cached.get(PACKAGES)) == [n + "-z" for n in before]


def test_an_enqueued_update_clears_it(
    cached: TestClient,
    sample: Sample,
    staff: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    before = _cached_then_renamed(cached, session_factory, "-q")
    response = cached.post(f"{CATALOGS}{sample.eessi.hex}/update_catalog/", headers=staff)
    assert response.status_code == 202, response.text
    assert _names(cached.get(PACKAGES)) == [n + "-q" for n in before]


def test_data_changed_clears_it(
    cached: TestClient, sample: Sample, session_factory: sessionmaker[Session]
) -> None:
    before = _cached_then_renamed(cached, session_factory, "-d")
    assert _names(cached.get(PACKAGES)) == before
    cache_events.data_changed()
    assert _names(cached.get(PACKAGES)) == [n + "-d" for n in before]


def test_a_sync_in_this_process_clears_it(
    cached: TestClient, sample: Sample, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    url = f"{PACKAGES}?catalog_uuid={sample.spack.hex}"
    assert _names(cached.get(url)) == ["gromacs"]
    with session_factory() as session:
        spack_id = session.execute(select(Catalog.id).where(Catalog.uuid == sample.spack)).scalar()
    assert spack_id is not None
    sync_catalog(engine, spack_id, small_snapshot())
    assert "gromacs" not in _names(cached.get(url))


def test_off_with_zero_seconds(client: TestClient, app: FastAPI) -> None:
    assert app.state.response_cache is None
