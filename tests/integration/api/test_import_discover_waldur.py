"""import_catalog and discover as Waldur's SoftwareCatalogViewSet answers them.

Waldur (marketplace/views.py): import_catalog refuses a name and type that already exist,
`ValidationError(f"A catalog with name={name} and type={catalog_type} already exists.")`,
whatever the version; discover's existing_version is the most recently modified catalog's,
and update_available is `latest != existing_version`. syncd keeps two extensions: a body that
names a version not imported yet imports it, and update_available compares versions
semantically against the newest catalog held (README, "Producer guide").
"""

from __future__ import annotations

from dramatiq.brokers.stub import StubBroker
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.integration.api.conftest import CATALOGS, FakeAdapter, Sample
from tests.integration.api.test_commands import DISCOVER, IMPORT, queued


def test_waldur_body_for_an_existing_name_and_type_is_waldurs_400(
    client: TestClient, broker: StubBroker, sample: Sample, staff: dict[str, str]
) -> None:
    # EESSI 2023.06 exists; upstream's latest is 2025.06, which does not: Waldur refuses all
    # the same, since its body (name only) can only ever import one catalog of a name.
    eessi = client.post(IMPORT, json={"name": "EESSI"}, headers=staff)
    assert eessi.status_code == 400
    assert eessi.json() == ["A catalog with name=EESSI and type=binary_runtime already exists."]
    spack = client.post(IMPORT, json={"name": "Spack", "force": True}, headers=staff)
    assert spack.status_code == 400
    assert spack.json() == ["A catalog with name=Spack and type=source_package already exists."]
    assert queued(broker) == []


def test_a_version_not_imported_yet_is_syncds_extension(
    client: TestClient, broker: StubBroker, sample: Sample, staff: dict[str, str]
) -> None:
    extension = client.post(IMPORT, json={"name": "EESSI", "version": "2025.06"}, headers=staff)
    assert extension.status_code == 202, extension.text
    assert extension.json() == {"status": "importing", "name": "EESSI", "version": "2025.06"}
    existing = client.post(IMPORT, json={"name": "EESSI", "version": "2023.06"}, headers=staff)
    assert existing.status_code == 400
    assert existing.json() == [
        "Catalog EESSI 2023.06 (binary_runtime) already exists; "
        "refresh it with update_catalog instead."
    ]
    assert queued(broker) == [
        {"actor": "import_catalog", "name": "EESSI", "version": "2025.06", "trigger": "api"}
    ]


def test_only_the_same_name_and_type_count(
    client: TestClient, broker: StubBroker, staff: dict[str, str]
) -> None:
    # A hand-made catalog called EESSI of another type is not the adapter's catalog.
    made = client.post(
        CATALOGS,
        json={"name": "EESSI", "version": "local", "catalog_type": "package_manager"},
        headers=staff,
    )
    assert made.status_code == 201, made.text
    response = client.post(IMPORT, json={"name": "EESSI"}, headers=staff)
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "importing", "name": "EESSI"}
    assert queued(broker) == [{"actor": "import_catalog", "name": "EESSI", "trigger": "api"}]


def _discover_spack(client: TestClient, app: FastAPI, staff: dict[str, str]) -> dict[str, object]:
    app.state.ctx.discover_cache.clear()  # the adapters' upstream versions change in the test
    entries = client.get(DISCOVER, headers=staff).json()
    return next(e for e in entries if e["name"] == "Spack")


def test_discover_existing_version_is_the_most_recently_modified(
    client: TestClient, app: FastAPI, staff: dict[str, str], adapters: dict[str, FakeAdapter]
) -> None:
    made = {}
    for version in ("9.1", "2.0"):
        response = client.post(
            CATALOGS,
            json={"name": "Spack", "version": version, "catalog_type": "source_package"},
            headers=staff,
        )
        assert response.status_code == 201, response.text
        made[version] = response.json()["uuid"]

    adapters["Spack"].versions = ["10.0"]
    spack = _discover_spack(client, app, staff)
    # Waldur's choice: 2.0 was made last. 10.0 is newer than anything held (Waldur: != 2.0).
    assert (spack["existing_version"], spack["update_available"]) == ("2.0", True)

    edited = client.patch(f"{CATALOGS}{made['9.1']}/", json={"description": "x"}, headers=staff)
    assert edited.status_code == 200
    assert _discover_spack(client, app, staff)["existing_version"] == "9.1"

    # Where syncd differs from Waldur's `latest != existing_version`: upstream's latest is
    # already held (9.1) although another catalog (2.0) was modified since.
    client.patch(f"{CATALOGS}{made['2.0']}/", json={"description": "y"}, headers=staff)
    adapters["Spack"].versions = ["9.1"]
    spack = _discover_spack(client, app, staff)
    assert (spack["existing_version"], spack["update_available"]) == ("2.0", False)
    # ... and what is held is newer than upstream's latest (a mirror ahead of it).
    adapters["Spack"].versions = ["1.0"]
    spack = _discover_spack(client, app, staff)
    assert (spack["existing_version"], spack["update_available"]) == ("2.0", False)
