"""GET /api/marketplace-software-changes/ through HTTP, on SQLite and PostgreSQL: newest
first, the filters (catalog_uuid, run_uuid, change, package_name, since), `o`, pages,
HEAD, and the representation (the run's catalog name and version on each change).
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
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session, sessionmaker

from syncd.api.app import create_app
from syncd.api.schemas import MAX_FILTER_CHARS
from syncd.config import Settings
from syncd.db.process_tables import SyncChange, SyncRun
from tests.integration.api.conftest import Sample
from tests.support.costly_catalog import worst_filter
from tests.support.history_rows import EESSI_UPDATE, SPACK_UPDATE, T0, History, seed_history

CHANGES = "/api/marketplace-software-changes/"
TIMEOUT_MS = 20
# Changes whose worst package_name match takes ~150 ms on PostgreSQL (ILIKE), seconds on SQLite.
COSTLY_CHANGES = 60_000
FIELDS = {
    "uuid",
    "run_uuid",
    "catalog_uuid",
    "catalog_name",
    "catalog_version",
    "created",
    "change",
    "package_name",
    "version",
    "module_version",
    "details",
}


@pytest.fixture
def history(session_factory: sessionmaker[Session], sample: Sample) -> History:
    return seed_history(session_factory, sample.eessi, sample.spack)


def _changes(response: Any) -> list[tuple[str, str, str]]:
    assert response.status_code == 200, response.text
    return [(c["change"], c["package_name"], c["version"]) for c in response.json()]


def _rows(changes: list[tuple[str, str, str, str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    return [(change, package, version) for change, package, version, _, _ in changes]


# Newest run first; within a run (one `created`), the last written first.
NEWEST_FIRST = [
    *reversed(_rows(SPACK_UPDATE)),
    *reversed(_rows(EESSI_UPDATE)),
    ("catalog_imported", "", ""),
    ("package_added", "zlib", ""),
]


def test_list_is_newest_first(client: TestClient, history: History) -> None:
    response = client.get(CHANGES)
    assert _changes(response) == NEWEST_FIRST
    assert response.headers["X-Result-Count"] == "10"
    assert 'rel="first"' in response.headers["Link"]


def test_representation(client: TestClient, history: History, sample: Sample) -> None:
    items = client.get(CHANGES, params={"change": "target_added"}).json()
    assert len(items) == 1
    item = items[0]
    assert set(item) == FIELDS
    uuid.UUID(hex=item["uuid"])
    assert len(item["uuid"]) == 32
    assert item["run_uuid"] == history.runs["eessi_update"].hex
    assert item["catalog_uuid"] == sample.eessi.hex
    assert (item["catalog_name"], item["catalog_version"]) == ("EESSI", "2023.06")
    assert item["created"] == (T0 + timedelta(days=2, minutes=2)).isoformat().replace("+00:00", "Z")
    assert (item["package_name"], item["version"], item["module_version"]) == (
        "python",
        "3.11.3",
        "3.11.3-GCCcore-12.3.0",
    )
    assert item["details"] == {"targets": 2, "names": ["x86_64/amd/zen3", "x86_64/amd/zen4"]}
    imported = client.get(CHANGES, params={"change": "catalog_imported"}).json()
    assert imported[0]["details"] == {"packages": 3, "versions": 4, "targets": 5}
    assert (imported[0]["version"], imported[0]["module_version"]) == ("", "")


def test_a_deleted_catalogs_changes_keep_its_names(client: TestClient, history: History) -> None:
    gone = client.get(CHANGES, params={"catalog_uuid": history.deleted_catalog.hex}).json()
    assert [(c["catalog_name"], c["package_name"]) for c in gone] == [("Gone", "zlib")]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"change": "package_added"},
            [
                ("package_added", "<script>alert('x')</script> & co", ""),
                ("package_added", "LAMMPS", ""),
                ("package_added", "GROMACS", ""),
                ("package_added", "zlib", ""),
            ],
        ),
        ({"change": "version_removed"}, [("version_removed", "gromacs", "2023.3")]),
        # icontains: any case, any part; % and _ are plain characters
        (
            {"package_name": "GROM"},
            [
                ("version_removed", "gromacs", "2023.3"),
                ("version_added", "gromacs", "2024.2"),
                ("package_added", "GROMACS", ""),
            ],
        ),
        ({"package_name": "%"}, []),
        ({"package_name": "<script>"}, [("package_added", "<script>alert('x')</script> & co", "")]),
        (
            {"change": "package_added", "package_name": "a"},
            [
                ("package_added", "<script>alert('x')</script> & co", ""),
                ("package_added", "LAMMPS", ""),
                ("package_added", "GROMACS", ""),
            ],
        ),
        # since: at or after (the eessi update finished at T0 + 2 days 2 minutes)
        (
            {"since": "2026-02-03T00:02:00Z"},
            [*reversed(_rows(SPACK_UPDATE)), *reversed(_rows(EESSI_UPDATE))],
        ),
        ({"since": "2026-02-03T00:02:01Z"}, list(reversed(_rows(SPACK_UPDATE)))),
        ({"since": "2026-02-03T01:02:01+01:00"}, list(reversed(_rows(SPACK_UPDATE)))),
        ({"since": "2027-01-01"}, []),
        # empty values are no filter
        ({"change": "", "run_uuid": "", "catalog_uuid": "", "since": ""}, NEWEST_FIRST),
    ],
)
def test_filters(
    client: TestClient, history: History, params: dict[str, str], expected: list[Any]
) -> None:
    response = client.get(CHANGES, params=params)
    assert _changes(response) == expected
    assert response.headers["X-Result-Count"] == str(len(expected))


def test_run_and_catalog_filters(client: TestClient, history: History, sample: Sample) -> None:
    run = history.runs["spack_update"]
    by_run = client.get(CHANGES, params={"run_uuid": run.hex})
    assert _changes(by_run) == list(reversed(_rows(SPACK_UPDATE)))
    assert _changes(client.get(CHANGES, params={"run_uuid": str(run)})) == _changes(by_run)
    by_catalog = client.get(CHANGES, params={"catalog_uuid": sample.spack.hex})
    assert _changes(by_catalog) == _changes(by_run)
    eessi = client.get(CHANGES, params={"catalog_uuid": sample.eessi.hex})
    assert eessi.headers["X-Result-Count"] == str(len(EESSI_UPDATE) + 1)
    # A run that changed nothing, or no run at all: an empty list, not an error.
    for nothing in (history.runs["eessi_failed"], uuid.uuid4()):
        response = client.get(CHANGES, params={"run_uuid": nothing.hex})
        assert response.json() == [] and response.headers["X-Result-Count"] == "0"


@pytest.mark.parametrize(
    ("params", "body"),
    [
        (
            {"change": "package_renamed"},
            {
                "change": [
                    "Select a valid choice. package_renamed is not one of the available choices."
                ]
            },
        ),
        ({"run_uuid": "12"}, {"run_uuid": ["Enter a valid UUID."]}),
        ({"catalog_uuid": "zz"}, {"catalog_uuid": ["Enter a valid UUID."]}),
        ({"since": "last week"}, {"since": ["Enter a valid date/time."]}),
        (
            {"package_name": "x" * 201},
            {"package_name": ["Ensure this value has at most 200 characters (it has 201)."]},
        ),
        (
            {"o": "-size"},
            {"o": ["Select a valid choice. -size is not one of the available choices."]},
        ),
    ],
)
def test_bad_filters_are_drf_400s(
    client: TestClient, history: History, params: dict[str, str], body: Any
) -> None:
    response = client.get(CHANGES, params=params)
    assert response.status_code == 400
    assert response.json() == body


def test_ordering(client: TestClient, history: History) -> None:
    by_name = _changes(client.get(CHANGES, params={"o": "package_name", "change": "package_added"}))
    # (The punctuated name's place depends on the database's collation.)
    assert [name for _, name, _ in by_name if name[0].isalpha()] == ["GROMACS", "LAMMPS", "zlib"]
    assert len(by_name) == 4
    oldest = _changes(client.get(CHANGES, params={"o": "created"}))
    assert oldest == [
        NEWEST_FIRST[-1],
        NEWEST_FIRST[-2],
        *_rows(EESSI_UPDATE),
        *_rows(SPACK_UPDATE),
    ]
    by_kind = client.get(CHANGES, params={"o": "change,-created"}).json()
    assert by_kind[0]["change"] == "catalog_imported"


def test_pages_and_head(client: TestClient, history: History) -> None:
    second = client.get(CHANGES, params={"page_size": 4, "page": 2})
    assert _changes(second) == NEWEST_FIRST[4:8]
    assert 'page=3>; rel="next"' in second.headers["Link"]
    assert client.get(CHANGES, params={"page": 4, "page_size": 4}).status_code == 404
    head = client.head(CHANGES, params={"change": "package_added"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["X-Result-Count"] == "4"
    picked = client.get(CHANGES, params=[("field", "change"), ("field", "run_uuid")]).json()
    assert set(picked[0]) == {"change", "run_uuid"}


def test_anonymous_read_as_configured(
    client: TestClient, history: History, app: FastAPI, user: dict[str, str]
) -> None:
    app.state.ctx.settings = replace(app.state.ctx.settings, anonymous_read=False)
    assert client.get(CHANGES).status_code == 401
    assert client.head(CHANGES).status_code == 401
    assert client.get(CHANGES, headers=user).status_code == 200


def test_a_statement_past_the_limit_is_a_503(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    adapters: dict[str, Any],
    session_factory: sessionmaker[Session],
) -> None:
    """The history lists run under the API engine's statement limit: the costliest
    package_name match over many long names is cancelled, not left to run."""
    with engine.begin() as connection:
        run_id = connection.execute(
            insert(SyncRun)
            .values(
                uuid=uuid.uuid4(),
                catalog_name="Costly",
                catalog_version="1",
                catalog_type="source_package",
                trigger="cli",
                started=T0,
                outcome="succeeded",
                validators={},
                counts={},
                change_count=COSTLY_CHANGES,
            )
            .returning(SyncRun.id)
        ).scalar_one()
        connection.execute(
            insert(SyncChange),
            [
                {
                    "uuid": uuid.uuid4(),
                    "run_id": run_id,
                    "created": T0,
                    "change": "package_added",
                    "package_name": "a" * 200,
                    "details": {},
                }
                for _ in range(COSTLY_CHANGES)
            ],
        )
    limited = replace(settings, api_statement_timeout_ms=TIMEOUT_MS)
    app = create_app(limited, broker=broker, adapters=adapters, fetcher=object())
    with TestClient(app) as client:
        response = client.get(CHANGES, params={"package_name": worst_filter(MAX_FILTER_CHARS)})
        assert response.status_code == 503, response.text
        assert response.json() == {
            "detail": f"The query took longer than {TIMEOUT_MS} ms and was cancelled; "
            "narrow the filters."
        }
