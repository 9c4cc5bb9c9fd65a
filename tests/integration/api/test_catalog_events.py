"""catalog.created and catalog.deleted: written through the API, in the transaction of the
catalog's insert or delete (docs/events.md), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from syncd.api import catalog_actions
from syncd.db.tables import Catalog
from tests.integration.api.conftest import CATALOGS, Sample
from tests.support.events import check_body, outbox_rows

SECRET_SOURCE = "https://mirror-user:s3cret@93.184.216.34/eessi/"


def _catalogs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Catalog)).scalar_one())


def test_create_writes_catalog_created_with_the_catalog_as_shown(
    client: TestClient, staff: dict[str, str], engine: Engine
) -> None:
    response = client.post(
        CATALOGS,
        json={"name": "EESSI", "version": "2025.06", "source_url": SECRET_SOURCE},
        headers=staff,
    )
    assert response.status_code == 201, response.text
    shown = response.json()
    [row] = outbox_rows(engine)
    body = row.body
    check_body(body)
    assert (row.type, body["type"]) == ("catalog.created", "catalog.created")
    assert body["catalog"] == {"uuid": shown["uuid"], "name": "EESSI", "version": "2025.06"}
    assert body["payload"] == shown
    assert body["payload"]["source_url"] == "https://***@93.184.216.34/eessi/"
    assert "s3cret" not in str(row.body)
    assert row.published_at is None


def test_delete_writes_catalog_deleted(
    client: TestClient, staff: dict[str, str], engine: Engine
) -> None:
    created = client.post(
        CATALOGS,
        json={"name": "Spack", "version": "1", "catalog_type": "source_package"}
        | {"source_url": SECRET_SOURCE},
        headers=staff,
    ).json()
    assert client.delete(f"{CATALOGS}{created['uuid']}/", headers=staff).status_code == 204
    rows = outbox_rows(engine)
    assert [r.type for r in rows] == ["catalog.created", "catalog.deleted"]
    body = rows[1].body
    check_body(body)
    assert body["catalog"] == {"uuid": created["uuid"], "name": "Spack", "version": "1"}
    assert body["payload"] == {
        "catalog_type": "source_package",
        "source_url": "https://***@93.184.216.34/eessi/",
    }


def test_refused_writes_write_no_event(
    client: TestClient, sample: Sample, staff: dict[str, str], engine: Engine
) -> None:
    duplicate = {"name": "EESSI", "version": "2023.06", "catalog_type": "binary_runtime"}
    assert client.post(CATALOGS, json=duplicate, headers=staff).status_code == 400
    assert client.post(CATALOGS, json={"name": ""}, headers=staff).status_code == 400
    assert client.delete(f"{CATALOGS}{'0' * 32}/", headers=staff).status_code == 404
    assert client.post(CATALOGS, json={"name": "X", "version": "1"}).status_code == 401
    assert outbox_rows(engine) == []


class Boom(Exception):
    pass


@pytest.fixture
def failing_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event is written, then the request fails before its commit."""
    real = catalog_actions.write_event

    def write_then_fail(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise Boom("after the event, before the commit")

    monkeypatch.setattr(catalog_actions, "write_event", write_then_fail)


def test_no_catalog_without_its_event_and_no_event_without_its_catalog(
    app: Any, sample: Sample, staff: dict[str, str], engine: Engine, failing_event: None
) -> None:
    before = _catalogs(engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        created = client.post(CATALOGS, json={"name": "New", "version": "1"}, headers=staff)
        deleted = client.delete(f"{CATALOGS}{sample.spack.hex}/", headers=staff)
        assert client.get(f"{CATALOGS}{sample.spack.hex}/").status_code == 200
    assert (created.status_code, deleted.status_code) == (500, 500)
    assert _catalogs(engine) == before
    assert outbox_rows(engine) == []
