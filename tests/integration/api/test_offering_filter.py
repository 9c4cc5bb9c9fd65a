"""`offering_uuid` on the package, version and target lists (Waldur's
catalog__offerings__offering__uuid), the links' lifetime (a catalog's deletion takes them),
the response cache across link writes, and the operations in the OpenAPI document, through
HTTP on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import schemathesis
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from syncd import cache_events
from syncd.api.app import create_app
from syncd.config import Settings
from tests.integration.api.conftest import (
    CATALOGS,
    PACKAGES,
    TARGETS,
    VERSIONS,
    FakeAdapter,
    Sample,
    names,
)

OFFERING = uuid.UUID("5b1c0e3f7c9d4d8e9a4f2c6b8d0e1f23")
UNKNOWN = uuid.UUID("11111111222233334444555555555555")
ADD = f"/api/marketplace-provider-offerings/{OFFERING.hex}/add_software_catalog/"


def _link(client: TestClient, headers: dict[str, str], catalog: uuid.UUID) -> str:
    response = client.post(ADD, json={"catalog": catalog.hex}, headers=headers)
    assert response.status_code == 201, response.text
    link: str = response.json()["uuid"]
    return link


def _uuids(response: Any) -> set[str]:
    return set(names(response, "uuid"))


@pytest.mark.parametrize("url", [PACKAGES, VERSIONS, TARGETS])
def test_an_offering_without_catalogs_matches_nothing(
    client: TestClient, sample: Sample, url: str
) -> None:
    for offering in (UNKNOWN, OFFERING):
        response = client.get(url, params={"offering_uuid": str(offering)})
        assert response.status_code == 200
        assert response.json() == []
        assert response.headers["X-Result-Count"] == "0"
        head = client.head(url, params={"offering_uuid": offering.hex})
        assert head.headers["X-Result-Count"] == "0"


def test_the_filter_keeps_the_linked_catalogs_rows(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    _link(client, staff, sample.spack)
    query = {"offering_uuid": OFFERING.hex}
    assert names(client.get(PACKAGES, params=query)) == ["gromacs"]
    assert _uuids(client.get(VERSIONS, params=query)) == {
        sample.versions["gromacs/2024.1"].hex,
        sample.versions["gromacs/2023.3"].hex,
    }
    assert _uuids(client.get(TARGETS, params=query)) == {sample.targets["gromacs/2024.1/build"].hex}

    _link(client, staff, sample.eessi)
    packages = client.get(PACKAGES, params=query)
    assert names(packages) == ["cuda-samples", "gromacs", "numpy", "python"]
    assert packages.headers["X-Result-Count"] == "4"
    assert client.get(VERSIONS, params=query).headers["X-Result-Count"] == "6"
    assert client.get(TARGETS, params=query).headers["X-Result-Count"] == "6"
    # With the other filters, as the offering page sends them.
    assert names(
        client.get(PACKAGES, params={**query, "cpu_microarchitecture": "neoverse_v1"})
    ) == ["python"]
    assert client.get(PACKAGES, params={"offering_uuid": "nope"}).json() == {
        "offering_uuid": ["Enter a valid UUID."]
    }


def test_deleting_a_catalog_deletes_its_links(
    client: TestClient,
    sample: Sample,
    staff: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    _link(client, staff, sample.eessi)
    spack_link = _link(client, staff, sample.spack)
    assert client.delete(f"{CATALOGS}{sample.eessi.hex}/", headers=staff).status_code == 204
    offering = client.get(f"/api/marketplace-provider-offerings/{OFFERING}/").json()
    assert [link["uuid"] for link in offering["software_catalogs"]] == [spack_link]
    assert names(client.get(PACKAGES, params={"offering_uuid": OFFERING.hex})) == ["gromacs"]
    assert client.delete(f"{CATALOGS}{sample.spack.hex}/", headers=staff).status_code == 204
    with session_factory() as session:
        assert session.scalar(text("SELECT count(*) FROM offering_catalog")) == 0
    assert client.get(PACKAGES, params={"offering_uuid": OFFERING.hex}).json() == []


@pytest.fixture
def cached(
    settings: Settings, engine: Engine, broker: StubBroker, adapters: dict[str, FakeAdapter]
) -> Iterator[TestClient]:
    app = create_app(
        replace(settings, api_cache_seconds=30.0),
        engine=engine,
        broker=broker,
        adapters=adapters,
        fetcher=object(),
    )
    with TestClient(app) as test_client:
        yield test_client


def test_link_writes_clear_the_response_cache(
    cached: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    changes: list[None] = []
    unsubscribe = cache_events.on_data_changed(lambda: changes.append(None))
    try:
        filtered = f"{PACKAGES}?offering_uuid={OFFERING.hex}"
        offering = f"/api/marketplace-public-offerings/{OFFERING.hex}/"
        assert cached.get(filtered).json() == []  # kept by the cache
        assert cached.get(offering).json()["software_catalogs"] == []
        link = _link(cached, staff, sample.spack)
        assert names(cached.get(filtered)) == ["gromacs"]
        assert len(cached.get(offering).json()["software_catalogs"]) == 1
        remove = ADD.replace("add_software_catalog", "remove_software_catalog")
        assert (
            cached.post(remove, json={"offering_catalog_uuid": link}, headers=staff).status_code
            == 204
        )
        assert cached.get(filtered).json() == []
        assert cached.get(offering).json()["software_catalogs"] == []
        assert len(changes) == 2  # each link write announced its change
    finally:
        unsubscribe()


def test_the_openapi_document_names_the_operations_as_waldurs_clients(
    client: TestClient,
) -> None:
    paths = client.get("/api/schema/").json()["paths"]
    base = "/api/marketplace-provider-offerings/{uuid}/"
    operations = {
        (method, path): op["operationId"]
        for path, ops in paths.items()
        if "offerings" in path
        for method, op in ops.items()
    }
    assert operations == {
        (
            "post",
            f"{base}add_software_catalog/",
        ): "marketplace_provider_offerings_add_software_catalog",
        (
            "patch",
            f"{base}update_software_catalog/",
        ): "marketplace_provider_offerings_update_software_catalog_partial_update",
        (
            "post",
            f"{base}remove_software_catalog/",
        ): "marketplace_provider_offerings_remove_software_catalog",
        ("get", base): "marketplace_provider_offerings_retrieve",
        (
            "get",
            "/api/marketplace-public-offerings/{uuid}/",
        ): "marketplace_public_offerings_retrieve",
    }
    add = paths[f"{base}add_software_catalog/"]["post"]
    assert set(add["responses"]) == {"201", "400", "401", "403", "404"}
    for url in (PACKAGES, VERSIONS, TARGETS):
        parameters = {p["name"]: p for p in paths[url]["get"]["parameters"]}
        assert "offering_uuid" in parameters


def test_success_answers_conform_to_the_document(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    """What schemathesis' random uuids never reach (a catalog that exists, a link): the
    201/200/204 answers match their published schemas."""
    schema = schemathesis.openapi.from_dict(client.get("/api/schema/").json())
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    base = "/api/marketplace-provider-offerings/{uuid}/"

    def call(method: str, path: str, expected: int, body: Any = None) -> Any:
        extra = {} if body is None else {"body": body}
        case = schema[path][method].Case(path_parameters={"uuid": OFFERING.hex}, **extra)
        response = client.request(
            **case.as_transport_kwargs(base_url="http://testserver", headers=staff)
        )
        assert response.status_code == expected, response.text
        case.validate_response(response, checks=checks)
        return response

    partition = uuid.uuid4().hex
    added = call(
        "POST",
        f"{base}add_software_catalog/",
        201,
        {"catalog": sample.eessi.hex, "enabled_cpu_family": ["x86_64"], "partition": partition},
    )
    link = added.json()["uuid"]
    call("GET", base, 200)
    call("GET", "/api/marketplace-public-offerings/{uuid}/", 200)
    call(
        "PATCH",
        f"{base}update_software_catalog/",
        200,
        {"offering_catalog_uuid": link, "enabled_cpu_microarchitectures": ["generic"]},
    )
    call("POST", f"{base}remove_software_catalog/", 204, {"offering_catalog_uuid": link})
    call("POST", f"{base}remove_software_catalog/", 404, {"offering_catalog_uuid": link})
