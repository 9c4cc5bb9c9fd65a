"""When every database connection of the API's pool is taken: requests wait at most
SYNCD_API_POOL_TIMEOUT_SECONDS and get a 503 with Retry-After in DRF's shape (before: a
plain-text 500 after SQLAlchemy's 30 s), and /health answers meanwhile (it needs neither a
connection nor a handler thread).

The connections are taken by the test itself, from the app's own engine: that is what slow
clients used to do when a handler kept its session until its answer had been sent (the
real-socket version is tests/reliability/test_slow_clients.py).
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

from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.engine import DEFAULT_MAX_OVERFLOW
from tests.integration.api.conftest import CATALOGS, PACKAGES, VERSIONS, FakeAdapter, Sample

POOL_TIMEOUT = 0.5


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
