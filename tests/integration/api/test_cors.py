"""CORS in process: off by default (no CORS header, preflights answered as before), listed
origins echoed with Vary, `*` without credentials, and an app that refuses `*` with
credentials however its settings were built."""

from __future__ import annotations

from dataclasses import replace

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from syncd.api.app import create_app
from syncd.config import Settings
from tests.integration.api.conftest import CATALOGS, FakeAdapter, Sample

UI = "https://waldur.example.org"
PREFLIGHT = {
    "Origin": UI,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


def _client(
    settings: Settings, engine: Engine, broker: StubBroker, adapters: dict[str, FakeAdapter]
) -> TestClient:
    app = create_app(settings, engine=engine, broker=broker, adapters=adapters, fetcher=object())
    return TestClient(app)


def test_no_cors_headers_by_default(client: TestClient, sample: Sample) -> None:
    read = client.get(CATALOGS, headers={"Origin": UI})
    assert read.status_code == 200
    assert not [h for h in read.headers if h.lower().startswith("access-control-")]
    preflight = client.options(CATALOGS, headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers


def test_listed_origin_gets_preflight_and_exposed_headers(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    adapters: dict[str, FakeAdapter],
    sample: Sample,
    staff: dict[str, str],
) -> None:
    cors = replace(settings, cors_origins=[UI], anonymous_read=False)
    with _client(cors, engine, broker, adapters) as client:
        # A browser sends no token in a preflight: it is answered before authentication.
        preflight = client.options(f"{CATALOGS}import_catalog/", headers=PREFLIGHT)
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == UI
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        assert "access-control-allow-credentials" not in preflight.headers
        read = client.get(CATALOGS, headers={"Origin": UI, **staff})
        assert read.headers["access-control-allow-origin"] == UI
        assert "Origin" in read.headers["vary"]
        exposed = {h.strip() for h in read.headers["access-control-expose-headers"].split(",")}
        assert {"X-Result-Count", "Link"} <= exposed
        # Errors too: the UI reads the 401's body rather than an opaque network failure.
        refused = client.get(CATALOGS, headers={"Origin": UI})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == UI
        stranger = client.get(CATALOGS, headers={"Origin": "https://evil.example", **staff})
        assert "access-control-allow-origin" not in stranger.headers
        bad_preflight = client.options(CATALOGS, headers={**PREFLIGHT, "Origin": "https://x.y"})
        assert "access-control-allow-origin" not in bad_preflight.headers


def test_any_origin_is_star_without_credentials(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    adapters: dict[str, FakeAdapter],
    sample: Sample,
) -> None:
    with _client(replace(settings, cors_origins=["*"]), engine, broker, adapters) as client:
        read = client.get(CATALOGS, headers={"Origin": UI, "Cookie": "sessionid=x"})
        assert read.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in read.headers
        preflight = client.options(CATALOGS, headers=PREFLIGHT)
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in preflight.headers


def test_star_with_credentials_is_refused_however_built(
    settings: Settings, engine: Engine, broker: StubBroker, adapters: dict[str, FakeAdapter]
) -> None:
    unsafe = replace(settings, cors_origins=["*"], cors_allow_credentials=True)
    with pytest.raises(ValueError, match="SYNCD_CORS_ALLOW_CREDENTIALS"):
        create_app(unsafe, engine=engine, broker=broker, adapters=adapters, fetcher=object())


def test_listed_origins_may_allow_credentials(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    adapters: dict[str, FakeAdapter],
    sample: Sample,
) -> None:
    cors = replace(settings, cors_origins=[UI], cors_allow_credentials=True)
    with _client(cors, engine, broker, adapters) as client:
        read = client.get(CATALOGS, headers={"Origin": UI})
        assert read.headers["access-control-allow-origin"] == UI
        assert read.headers["access-control-allow-credentials"] == "true"
