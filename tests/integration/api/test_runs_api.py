"""GET /api/marketplace-software-catalog-runs/ and /{uuid}/ through HTTP, on SQLite and
PostgreSQL: Waldur's list conventions, the filters, `o`, the representation (credentials
hidden), anonymous reads as configured, and the response cache cleared by a sync's commit.

The history is written directly (tests/support/history_rows.py), as the sync writes it.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.tables import Catalog
from syncd.sync import sync_catalog
from tests.integration.api.conftest import FakeAdapter, Sample
from tests.support.history_rows import SECRET_URL, T0, History, add_run, seed_history
from tests.support.records import small_snapshot

RUNS = "/api/marketplace-software-catalog-runs/"
CHANGES = "/api/marketplace-software-changes/"
BASE = "http://testserver"
FIELDS = {
    "url",
    "uuid",
    "catalog_uuid",
    "catalog_name",
    "catalog_version",
    "trigger",
    "command",
    "message_id",
    "started",
    "finished",
    "outcome",
    "validators",
    "counts",
    "change_count",
    "error",
    "changes_url",
}


@pytest.fixture
def history(session_factory: sessionmaker[Session], sample: Sample) -> History:
    return seed_history(session_factory, sample.eessi, sample.spack)


def _uuids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["uuid"] for item in response.json()]


def _hexes(history: History, *names: str) -> list[str]:
    return [history.runs[name].hex for name in names]


def test_list_is_a_bare_array_newest_first(client: TestClient, history: History) -> None:
    response = client.get(RUNS)
    assert _uuids(response) == [run.hex for run in history.newest_first]
    assert response.headers["X-Result-Count"] == "8"
    assert response.headers["Link"] == f'<{BASE}{RUNS}>; rel="first", <{BASE}{RUNS}>; rel="last"'


def test_representation(client: TestClient, history: History, sample: Sample) -> None:
    run = history.runs["eessi_update"]
    item = client.get(f"{RUNS}{run.hex}/").json()
    assert set(item) == FIELDS
    assert item["url"] == f"{BASE}{RUNS}{run.hex}/"
    assert item["uuid"] == run.hex
    assert item["catalog_uuid"] == sample.eessi.hex
    assert (item["catalog_name"], item["catalog_version"]) == ("EESSI", "2023.06")
    assert (item["trigger"], item["command"], item["outcome"]) == (
        "scheduler",
        "update_catalog",
        "succeeded",
    )
    assert item["started"] == (T0 + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    assert item["finished"] == (T0 + timedelta(days=2, minutes=2)).isoformat().replace(
        "+00:00", "Z"
    )
    assert item["change_count"] == 6
    assert item["counts"]["packages"] == {
        "created": 6,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
    }
    assert set(item["counts"]) == {"packages", "versions", "targets"}
    assert item["changes_url"] == f"{BASE}{CHANGES}?run_uuid={run.hex}"
    # The changes_url is a working link to this run's changes.
    changes = client.get(item["changes_url"].removeprefix(BASE))
    assert changes.headers["X-Result-Count"] == "6"
    assert {change["run_uuid"] for change in changes.json()} == {run.hex}


def test_credentials_are_hidden_in_error_and_validators(
    client: TestClient, history: History
) -> None:
    failed = client.get(f"{RUNS}{history.runs['eessi_failed'].hex}/").json()
    assert "s3cret" not in failed["error"]
    assert "https://***@mirror.example/eessi/ answered 503" in failed["error"]
    unchanged = client.get(f"{RUNS}{history.runs['eessi_unchanged'].hex}/").json()
    assert unchanged["validators"] == {
        "https://***@mirror.example/eessi/": {"etag": '"abc"', "last_modified": "x"},
        "hash": "f00",
    }
    assert "s3cret" not in client.get(RUNS).text
    assert SECRET_URL not in client.get(RUNS).text


def test_a_runs_catalog_may_be_gone_or_never_made(client: TestClient, history: History) -> None:
    gone = client.get(f"{RUNS}?catalog_uuid={history.deleted_catalog.hex}").json()
    assert [(r["catalog_name"], r["change_count"]) for r in gone] == [("Gone", 1)]
    orphan = client.get(f"{RUNS}{history.runs['orphan_failed'].hex}/").json()
    assert orphan["catalog_uuid"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("outcome=failed", ["orphan_failed", "eessi_failed"]),
        ("outcome=refused", ["spack_refused"]),
        ("trigger=cli", ["spack_update", "deleted_import"]),
        ("trigger=api&outcome=succeeded", ["eessi_import"]),
        # inclusive bounds; a naive time is UTC, an offset is converted
        ("started_after=2026-02-05T00:00:00", ["orphan_failed", "spack_refused", "eessi_failed"]),
        (
            "started_after=2026-02-05T01:00:00%2B01:00",
            ["orphan_failed", "spack_refused", "eessi_failed"],
        ),
        ("started_before=2026-02-02", ["eessi_import", "deleted_import"]),
        (
            "started_after=2026-02-03&started_before=2026-02-05",
            ["eessi_failed", "eessi_unchanged", "spack_update", "eessi_update"],
        ),
        # empty values are no filter (django-filter)
        ("outcome=&trigger=&catalog_uuid=&started_after=", None),
    ],
)
def test_filters(
    client: TestClient, history: History, query: str, expected: list[str] | None
) -> None:
    want = (
        [run.hex for run in history.newest_first]
        if expected is None
        else _hexes(history, *expected)
    )
    response = client.get(f"{RUNS}?{query}")
    assert _uuids(response) == want
    assert response.headers["X-Result-Count"] == str(len(want))


def test_catalog_filter(client: TestClient, history: History, sample: Sample) -> None:
    spack = _uuids(client.get(RUNS, params={"catalog_uuid": sample.spack.hex}))
    assert spack == _hexes(history, "spack_refused", "spack_update")
    hyphenated = _uuids(client.get(RUNS, params={"catalog_uuid": str(sample.spack)}))
    assert hyphenated == spack
    assert _uuids(client.get(RUNS, params={"catalog_uuid": uuid.uuid4().hex})) == []


@pytest.mark.parametrize(
    ("params", "body"),
    [
        (
            {"outcome": "exploded"},
            {"outcome": ["Select a valid choice. exploded is not one of the available choices."]},
        ),
        (
            {"trigger": "cron"},
            {"trigger": ["Select a valid choice. cron is not one of the available choices."]},
        ),
        ({"started_after": "yesterday"}, {"started_after": ["Enter a valid date/time."]}),
        ({"started_before": "2026-13-01"}, {"started_before": ["Enter a valid date/time."]}),
        (
            {"started_after": "0001-01-01T00:00:00+05:00"},
            {"started_after": ["Enter a valid date/time."]},
        ),
        ({"catalog_uuid": "nope"}, {"catalog_uuid": ["Enter a valid UUID."]}),
        (
            {"o": "colour"},
            {"o": ["Select a valid choice. colour is not one of the available choices."]},
        ),
    ],
)
def test_bad_filters_are_drf_400s(
    client: TestClient, history: History, params: dict[str, str], body: Any
) -> None:
    response = client.get(RUNS, params=params)
    assert response.status_code == 400
    assert response.json() == body


def test_ordering(client: TestClient, history: History) -> None:
    oldest_first = [run.hex for run in history.runs.values()]
    assert _uuids(client.get(RUNS, params={"o": "started"})) == oldest_first
    by_name = client.get(RUNS, params={"o": "catalog_name,-started"}).json()
    assert [r["catalog_name"] for r in by_name] == [
        "EESSI",
        "EESSI",
        "EESSI",
        "EESSI",
        "Gone",
        "Nope",
        "Spack",
        "Spack",
    ]
    assert [r["uuid"] for r in by_name[:4]] == _hexes(
        history, "eessi_failed", "eessi_unchanged", "eessi_update", "eessi_import"
    )
    most_changes = client.get(RUNS, params={"o": "-change_count"}).json()
    assert most_changes[0]["uuid"] == history.runs["eessi_update"].hex


def test_pages_and_head(client: TestClient, history: History) -> None:
    response = client.get(RUNS, params={"page_size": 3, "page": 2})
    assert _uuids(response) == [run.hex for run in history.newest_first[3:6]]
    assert response.headers["Link"] == (
        f'<{BASE}{RUNS}?page_size=3>; rel="first", '
        f'<{BASE}{RUNS}?page_size=3>; rel="prev", '
        f'<{BASE}{RUNS}?page_size=3&page=3>; rel="next", '
        f'<{BASE}{RUNS}?page_size=3&page=3>; rel="last"'
    )
    assert client.get(RUNS, params={"page": 9}).json() == {"detail": "Invalid page."}
    head = client.head(RUNS, params={"outcome": "failed"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["X-Result-Count"] == "2"
    fields = client.get(RUNS, params=[("field", "uuid"), ("field", "outcome")]).json()
    assert set(fields[0]) == {"uuid", "outcome"}


def test_retrieve(client: TestClient, history: History) -> None:
    run = history.runs["spack_refused"]
    assert client.get(f"{RUNS}{run}/").json()["uuid"] == run.hex  # hyphenated works too
    assert client.get(f"{RUNS}{run.hex}/", params={"field": "outcome"}).json() == {
        "outcome": "refused"
    }
    assert client.head(f"{RUNS}{run.hex}/").status_code == 200
    for missing in (uuid.uuid4().hex, "not-a-uuid"):
        response = client.get(f"{RUNS}{missing}/")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}


def test_anonymous_read_as_configured(
    client: TestClient, history: History, app: FastAPI, user: dict[str, str]
) -> None:
    app.state.ctx.settings = replace(app.state.ctx.settings, anonymous_read=False)
    for url in (RUNS, f"{RUNS}{history.runs['eessi_import'].hex}/"):
        response = client.get(url)
        assert response.status_code == 401
        assert response.json() == {"detail": "Authentication credentials were not provided."}
        assert client.get(url, headers=user).status_code == 200
    assert client.get(RUNS, headers={"Authorization": "Token wrong"}).status_code == 401


def test_writes_are_not_allowed(client: TestClient, history: History) -> None:
    response = client.post(RUNS, json={})
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.'}


def test_a_sync_commit_clears_the_cached_history(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    adapters: dict[str, FakeAdapter],
    session_factory: sessionmaker[Session],
    sample: Sample,
    history: History,
) -> None:
    """Anonymous reads of the runs, the changes and the feeds are cached; a run recorded
    behind the API's back stays unseen until a sync in this process commits (this app
    watches no other process's commits: test_cache_invalidation.py's subject)."""
    cached = replace(settings, api_cache_seconds=30.0)
    app = create_app(
        cached,
        engine=engine,
        broker=broker,
        adapters=adapters,
        fetcher=object(),
        watch_changes=lambda _engine, _cache: None,
    )
    urls = (RUNS, CHANGES, "/feeds/changes.atom", f"/feeds/catalogs/{sample.spack.hex}.atom")
    with TestClient(app) as anonymous:
        before = {url: anonymous.get(url) for url in urls}
        assert all(response.status_code == 200 for response in before.values())
        new_run = add_run(
            session_factory,
            catalog_uuid=sample.spack,
            catalog_name="Spack",
            catalog_version="2026.07.01",
            started=T0 + timedelta(days=30),
            changes=[("package_added", "hdf5", "", "", {})],
        )
        for url in urls:
            assert new_run.hex not in anonymous.get(url).text, url  # a cache hit
        with session_factory() as session:
            spack_id = session.execute(
                select(Catalog.id).where(Catalog.uuid == sample.spack)
            ).scalar_one()
        sync_catalog(engine, spack_id, small_snapshot())
        for url in urls:
            assert new_run.hex in anonymous.get(url).text, url


def test_openapi_document_describes_the_history(client: TestClient) -> None:
    paths = client.get("/api/schema/").json()["paths"]
    operations = {
        (method, path): operation["operationId"]
        for path, methods in paths.items()
        for method, operation in methods.items()
    }
    assert {
        ("get", RUNS): "marketplace_software_catalog_runs_list",
        ("head", RUNS): "marketplace_software_catalog_runs_count",
        ("get", f"{RUNS}{{uuid}}/"): "marketplace_software_catalog_runs_retrieve",
        ("get", CHANGES): "marketplace_software_changes_list",
        ("head", CHANGES): "marketplace_software_changes_count",
        ("get", "/feeds/changes.atom"): "feeds_changes_retrieve",
        ("get", "/feeds/catalogs/{uuid}.atom"): "feeds_catalogs_retrieve",
    }.items() <= operations.items()
    runs = {p["name"] for p in paths[RUNS]["get"]["parameters"]}
    assert {"catalog_uuid", "outcome", "trigger", "started_after", "started_before", "o"} <= runs
    changes = {p["name"] for p in paths[CHANGES]["get"]["parameters"]}
    assert {"catalog_uuid", "run_uuid", "change", "package_name", "since", "o"} <= changes
    feed = paths["/feeds/catalogs/{uuid}.atom"]["get"]["responses"]
    assert set(feed["200"]["content"]) == {"application/atom+xml"}
    assert set(feed["404"]["content"]) == {"application/json"}
