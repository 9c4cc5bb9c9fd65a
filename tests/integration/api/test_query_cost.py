"""What one anonymous request may cost the database: text filters and `o` are capped, every
statement of the API's own engine is time-limited (503 past it, on both dialects, and a
catalog delete is exempt), and SQLite's refusals of a client's input are 400s, not outages.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from syncd.api.app import create_app
from syncd.api.errors import client_error
from syncd.api.lean import pg_rows
from syncd.api.schemas import MAX_FILTER_CHARS
from syncd.config import Settings
from syncd.db.engine import make_engine
from tests.integration.api.conftest import CATALOGS, PACKAGES, TARGETS
from tests.support.costly_catalog import costly_catalog, worst_filter

TIMEOUT_MS = 50


@pytest.fixture
def limited(
    settings: Settings, engine: Engine, broker: StubBroker, adapters: dict[str, Any]
) -> Iterator[TestClient]:
    """The app as `syncd api` builds it (its own engine, from settings) with a short limit,
    over a catalog where a filter at the cap takes far longer than the limit."""
    costly_catalog(engine, rows=3000)
    limited_settings = replace(settings, api_statement_timeout_ms=TIMEOUT_MS)
    app = create_app(limited_settings, broker=broker, adapters=adapters, fetcher=object())
    with TestClient(app) as client:
        yield client


def test_a_filter_past_the_cap_is_a_400_naming_it(client: TestClient) -> None:
    too_long = "x" * (MAX_FILTER_CHARS + 1)
    for path, name in [(TARGETS, "path"), (PACKAGES, "query"), (CATALOGS, "description")]:
        r = client.get(path, params={name: too_long})
        assert r.status_code == 400, (path, r.text)
        assert r.json() == {
            name: [
                f"Ensure this value has at most {MAX_FILTER_CHARS} characters "
                f"(it has {MAX_FILTER_CHARS + 1})."
            ]
        }
    assert client.get(TARGETS, params={"path": "x" * MAX_FILTER_CHARS}).status_code == 200


def test_too_many_ordering_terms_is_a_400(client: TestClient) -> None:
    r = client.get(TARGETS, params={"o": ",".join(["created"] * 11)})
    assert r.status_code == 400
    assert r.json() == {"o": ["Ensure this field has no more than 10 elements."]}
    assert client.get(TARGETS, params={"o": ",".join(["created"] * 10)}).status_code == 200


def _timeouts_counted(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("syncd_api_statement_timeouts_total "):
            return float(line.split()[1])
    raise AssertionError("syncd_api_statement_timeouts_total is not exported")


def test_a_statement_past_the_limit_is_cancelled_with_a_503(limited: TestClient) -> None:
    counted = _timeouts_counted(limited)
    r = limited.get(TARGETS, params={"path": worst_filter(MAX_FILTER_CHARS)})
    assert r.status_code == 503, r.text
    assert r.json() == {
        "detail": f"The query took longer than {TIMEOUT_MS} ms and was cancelled; "
        "narrow the filters."
    }
    assert r.headers["Retry-After"]
    assert _timeouts_counted(limited) == counted + 1
    # The connection is fine afterwards: cheap requests still answer.
    assert limited.get(CATALOGS).status_code == 200
    assert (
        limited.get(PACKAGES, params={"query": worst_filter(MAX_FILTER_CHARS)}).status_code == 503
    )


def test_a_page_read_by_psycopg_keeps_the_limit_and_its_503(
    limited: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unfiltered lists read on PostgreSQL through psycopg itself (lean/pg_rows.py) run
    on the same pooled connections: past the limit, the same 503 and count; the connection
    goes back to the pool usable, in its transaction mode."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's lean reads go through SQLAlchemy")
    assert limited.get(PACKAGES).status_code == 200
    text_of = pg_rows.text_of

    def slow(*args: Any) -> pg_rows.Text | None:
        found = text_of(*args)
        assert found is not None
        return pg_rows.Text(f"SELECT pg_sleep(1), * FROM ({found.sql}) AS page_", found.params)

    monkeypatch.setattr("syncd.api.lean.reads.text_of", slow)
    counted = _timeouts_counted(limited)
    r = limited.get(PACKAGES)
    assert (r.status_code, r.json()["detail"]) == (503, REFUSED), r.text
    assert _timeouts_counted(limited) == counted + 1
    monkeypatch.undo()
    for _ in range(3):
        assert limited.get(PACKAGES).status_code == 200
        assert limited.get(TARGETS).status_code == 200  # a Session on a pooled connection
    pool = limited.app.state.ctx.engine.pool  # type: ignore[attr-defined]
    pooled = [pool.connect() for _ in range(pool.checkedin())]
    try:
        assert pooled and not any(c.driver_connection.autocommit for c in pooled)
    finally:
        for connection in pooled:
            connection.close()


REFUSED = f"The query took longer than {TIMEOUT_MS} ms and was cancelled; narrow the filters."


def test_deleting_a_catalog_is_exempt_from_the_limit(
    limited: TestClient, staff: dict[str, str]
) -> None:
    uuid = limited.get(CATALOGS).json()[0]["uuid"]
    r = limited.delete(f"{CATALOGS}{uuid}/", headers=staff)
    assert r.status_code == 204, r.text
    assert limited.get(CATALOGS).json() == []


def _sqlite_limits(engine: Engine, **limits: int) -> None:
    def lower(dbapi_connection: Any, _record: Any) -> None:
        for name, value in limits.items():
            dbapi_connection.setlimit(getattr(sqlite3, name), value)

    event.listen(engine, "connect", lower)


def test_sqlite_pattern_too_complex_is_a_400_not_an_outage(
    sqlite_url: str, broker: StubBroker, adapters: dict[str, Any]
) -> None:
    # SQLite's own limit (50,000 bytes) is above the cap; lowered below it, a value the cap
    # lets through reaches SQLite and must still be the client's error.
    engine = make_engine(sqlite_url)
    _sqlite_limits(engine, SQLITE_LIMIT_LIKE_PATTERN_LENGTH=100)
    costly_catalog(engine, rows=1)  # LIKE only runs on a row
    settings = Settings(database_url=sqlite_url, api_cache_seconds=0)
    app = create_app(settings, engine=engine, broker=broker, adapters=adapters, fetcher=object())
    try:
        with TestClient(app) as client:
            r = client.get(TARGETS, params={"path": "x" * 150})
            assert r.status_code == 400, r.text
            assert r.json() == [
                "A filter value is too complex a pattern for the database to match; shorten it."
            ]
    finally:
        engine.dispose()


def test_sqlite_too_many_order_terms_maps_to_a_400() -> None:
    # The `o` cap keeps requests from reaching SQLite's ORDER BY limit (its column limit, which
    # also bounds the SELECT list); the mapping is checked on the error SQLite raises.
    engine = make_engine("sqlite://")
    terms = ", ".join(["1"] * 2001)
    try:
        with engine.connect() as conn, pytest.raises(Exception) as raised:
            conn.execute(text(f"SELECT 1 ORDER BY {terms}"))
    finally:
        engine.dispose()
    refused = client_error(raised.value)
    assert refused is not None
    assert (refused.status, refused.body) == (400, {"o": ["Too many ordering terms."]})
    assert client_error(sqlite3.OperationalError("database is locked")) is None
