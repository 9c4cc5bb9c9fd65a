"""SQLite lock contention is not an outage: a write that waited out the busy timeout behind a
sync's write lock gets a 503 that says so, with Retry-After, and the next try succeeds."""

from __future__ import annotations

import sqlite3

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient

from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db import engine as db_engine
from syncd.db.engine import make_engine, make_session_factory
from tests.integration.api.conftest import CATALOGS, QUEUE, _token


def test_a_write_behind_a_held_write_lock_is_a_503_saying_so(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_engine, "SQLITE_BUSY_TIMEOUT_MS", 200)  # not 30 s in a test
    engine = make_engine(sqlite_url)
    settings = Settings(database_url=sqlite_url, queue_name=QUEUE, api_cache_seconds=0)
    broker = StubBroker()
    app = create_app(settings, engine=engine, broker=broker, adapters={}, fetcher=object())
    headers = {"Authorization": f"Token {_token(make_session_factory(engine), staff=True)}"}
    body = {"name": "Busy", "version": "1", "catalog_type": "source_package"}
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        with TestClient(app) as client:
            uuid = client.post(CATALOGS, json=body, headers=headers).json()["uuid"]
            holder.execute("BEGIN IMMEDIATE")  # as a sync's diff does
            busy = client.patch(f"{CATALOGS}{uuid}/", json={"description": "x"}, headers=headers)
            holder.execute("ROLLBACK")
            after = client.patch(f"{CATALOGS}{uuid}/", json={"description": "y"}, headers=headers)
    finally:
        holder.close()
        engine.dispose()
        broker.close()
    assert busy.status_code == 503
    assert "a catalog sync holds SQLite's write lock" in busy.json()["detail"]
    assert busy.headers["Retry-After"]
    assert after.status_code == 200
    assert after.json()["description"] == "y"
