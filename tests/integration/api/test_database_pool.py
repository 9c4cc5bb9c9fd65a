"""The API's database pool and slow clients.

- Every endpoint has given its connection back to the pool (its transaction ended) by the
  time its answer starts to be sent: a client that reads slowly, or never, holds none.
- When every connection is taken anyway, requests wait at most
  SYNCD_API_POOL_TIMEOUT_SECONDS and get a 503 with Retry-After in DRF's shape (before: a
  plain-text 500 after SQLAlchemy's 30 s), and /health answers meanwhile (it needs neither a
  connection nor a handler thread). The connections are taken by the test itself, from the
  app's own engine: what slow clients used to do when a handler kept its session until its
  answer had been sent (the real-socket version is tests/reliability/test_slow_clients.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.engine import DEFAULT_MAX_OVERFLOW
from tests.integration.api.conftest import (
    CATALOGS,
    PACKAGES,
    TARGETS,
    VERSIONS,
    FakeAdapter,
    Sample,
)

POOL_TIMEOUT = 0.5


def _checked_out_at_start(app: FastAPI, engine: Engine) -> tuple[ASGIApp, list[tuple[str, int]]]:
    """`app` wrapped to note, per request, how many pool connections are checked out when
    its answer starts to be sent."""
    seen: list[tuple[str, int]] = []

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.append((f"{scope['method']} {scope['path']}", engine.pool.checkedout()))  # type: ignore[attr-defined]
            await send(message)

        await app(scope, receive, noting)

    return wrapped, seen


def test_every_endpoint_gives_its_connection_back_before_answering(
    app: FastAPI, engine: Engine, sample: Sample, staff: dict[str, str]
) -> None:
    wrapped, seen = _checked_out_at_start(app, engine)
    catalog = f"{CATALOGS}{sample.eessi}/"
    reads = [
        CATALOGS,
        catalog,
        f"{catalog}cpu_targets/",
        PACKAGES,
        f"{PACKAGES}{sample.packages['python']}/",
        VERSIONS,
        f"{VERSIONS}{next(iter(sample.versions.values()))}/",
        TARGETS,
        f"{TARGETS}{next(iter(sample.targets.values()))}/",
        f"{PACKAGES}00000000000000000000000000000000/",  # a 404 ends its transaction too
        "/ready",
    ]
    body = {"name": "Pool", "version": "1", "catalog_type": "source_package"}
    with TestClient(wrapped) as client:
        for path in reads:
            for method in ("GET", "HEAD"):
                client.request(method, path)
            client.get(path, headers=staff)  # authenticated: the token lookup's session too
        created = client.post(CATALOGS, json=body, headers=staff)
        assert created.status_code == 201, created.text
        item = f"{CATALOGS}{created.json()['uuid']}/"
        client.patch(item, json={"description": "x"}, headers=staff)
        client.put(item, json={**body, "description": "y"}, headers=staff)
        client.post(f"{item}update_catalog/", headers=staff)
        client.post(f"{CATALOGS}import_catalog/", json={"name": "Spack"}, headers=staff)
        client.delete(item, headers=staff)
    assert len(seen) >= 3 * len(reads) + 6
    holding = [(request, count) for request, count in seen if count]
    assert not holding, f"connections still checked out when the answer started: {holding}"


@pytest.fixture
def busy_app(
    settings: Settings, broker: StubBroker, adapters: dict[str, FakeAdapter]
) -> Iterator[FastAPI]:
    """The app with the engine it builds from its settings (one connection per handler
    thread, plus the overflow), every connection of which is held by the test."""
    tuned = replace(settings, api_threads=1, api_pool_timeout_seconds=POOL_TIMEOUT)
    app = create_app(tuned, broker=broker, adapters=adapters, fetcher=object())
    engine: Engine = app.state.ctx.engine
    with ExitStack() as held:
        for _ in range(1 + DEFAULT_MAX_OVERFLOW):
            held.enter_context(engine.connect())
        yield app
    engine.dispose()


def test_an_exhausted_pool_answers_503_with_retry_after(busy_app: FastAPI, sample: Sample) -> None:
    paths = [
        f"{CATALOGS}{sample.eessi}/",
        f"{PACKAGES}{sample.packages['python']}/",
        PACKAGES,
        VERSIONS,
    ]
    with TestClient(busy_app, raise_server_exceptions=False) as client:
        for path in paths:
            started = time.monotonic()
            r = client.get(path)
            seconds = time.monotonic() - started
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.headers["retry-after"]
            assert r.headers["content-type"].startswith("application/json")
            assert "detail" in r.json()
            # Waited for the pool's timeout, not SQLAlchemy's default 30 s.
            assert seconds < 10 * POOL_TIMEOUT + 5, (path, seconds)


def test_health_answers_while_every_handler_thread_waits_for_a_connection(
    settings: Settings, broker: StubBroker, adapters: dict[str, FakeAdapter], sample: Sample
) -> None:
    # One handler thread, whose request waits 3 s for a connection the test holds.
    tuned = replace(settings, api_threads=1, api_pool_timeout_seconds=3.0)
    app = create_app(tuned, broker=broker, adapters=adapters, fetcher=object())
    engine: Engine = app.state.ctx.engine
    answered: dict[str, float] = {}
    try:
        with ExitStack() as held, TestClient(app, raise_server_exceptions=False) as client:
            for _ in range(1 + DEFAULT_MAX_OVERFLOW):
                held.enter_context(engine.connect())

            def retrieve() -> None:
                client.get(f"{CATALOGS}{sample.eessi}/")
                answered["retrieve"] = time.monotonic()

            blocked = threading.Thread(target=retrieve, daemon=True)
            blocked.start()
            time.sleep(0.5)  # the retrieve now holds the only handler thread
            started = time.monotonic()
            health = client.get("/health")
            answered["health"] = time.monotonic()
            assert health.status_code == 200
            assert "retrieve" not in answered, "the retrieve was not waiting for the pool"
            assert answered["health"] - started < 2.5
            blocked.join(30)
    finally:
        engine.dispose()
