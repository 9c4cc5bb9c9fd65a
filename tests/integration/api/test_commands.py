"""import_catalog, update_catalog and discover: validation, the queue, the cache."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient

from tests.integration.api.conftest import CATALOGS, QUEUE, FakeAdapter, Sample

IMPORT = f"{CATALOGS}import_catalog/"
DISCOVER = f"{CATALOGS}discover/"


def queued(broker: StubBroker) -> list[dict[str, Any]]:
    """(actor, kwargs) of every message on the test queue."""
    return [
        {"actor": m.actor_name, **m.kwargs}
        for m in (Message.decode(body) for body in list(broker.queues[QUEUE].queue))
    ]


def test_import_puts_the_command_on_the_queue(
    client: TestClient, broker: StubBroker, staff: dict[str, str]
) -> None:
    response = client.post(IMPORT, json={"name": "EESSI", "version": "2025.06"}, headers=staff)
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "importing", "name": "EESSI", "version": "2025.06"}
    assert queued(broker) == [
        {"actor": "import_catalog", "name": "EESSI", "version": "2025.06", "trigger": "api"}
    ]


def test_import_without_version_of_a_new_name(
    client: TestClient, broker: StubBroker, staff: dict[str, str]
) -> None:
    # No EESSI catalog yet: Waldur's body imports the latest upstream offers.
    response = client.post(IMPORT, json={"name": "EESSI"}, headers=staff)
    assert response.status_code == 202, response.text
    # Waldur's answer, exactly: no "version" key when the request named none.
    assert response.json() == {"status": "importing", "name": "EESSI"}
    assert queued(broker) == [{"actor": "import_catalog", "name": "EESSI", "trigger": "api"}]


def test_import_of_an_existing_version_is_a_400(
    client: TestClient, broker: StubBroker, sample: Sample, staff: dict[str, str]
) -> None:
    response = client.post(IMPORT, json={"name": "EESSI", "version": "2023.06"}, headers=staff)
    assert response.status_code == 400
    assert "EESSI 2023.06 (binary_runtime) already exists" in response.json()[0]
    # Without a version (Waldur's body), any Spack catalog makes it a 400, with or without a
    # source of the request's own.
    for body in ({"name": "Spack"}, {"name": "Spack", "source_url": "https://1.1.1.1/r.json"}):
        latest = client.post(IMPORT, json=body, headers=staff)
        assert latest.status_code == 400
        assert latest.json() == [
            "A catalog with name=Spack and type=source_package already exists."
        ]
    assert queued(broker) == []
    # A version that does not exist yet, from a source of its own (a mirror that may hold
    # other versions): not judged by what the default upstream offers.
    mirrored = client.post(
        IMPORT,
        json={"name": "Spack", "version": "2026.08.01", "source_url": "https://1.1.1.1/r.json"},
        headers=staff,
    )
    assert mirrored.status_code == 202, mirrored.text
    assert queued(broker)[0]["source"] == "https://1.1.1.1/r.json"


def test_import_of_an_existing_latest_eessi_is_a_400(
    client: TestClient,
    broker: StubBroker,
    sample: Sample,
    staff: dict[str, str],
    adapters: dict[str, FakeAdapter],
) -> None:
    adapters["EESSI"].versions = ["2023.06"]
    response = client.post(IMPORT, json={"name": "EESSI"}, headers=staff)
    assert response.status_code == 400
    assert "already exists" in response.json()[0]
    assert queued(broker) == []


def test_import_with_upstream_down_still_enqueues(
    client: TestClient, broker: StubBroker, staff: dict[str, str], adapters: dict[str, FakeAdapter]
) -> None:
    adapters["EESSI"].fail = True
    assert client.post(IMPORT, json={"name": "EESSI"}, headers=staff).status_code == 202
    assert len(queued(broker)) == 1


def test_import_of_an_unknown_adapter_lists_the_registered(
    client: TestClient, staff: dict[str, str]
) -> None:
    response = client.post(IMPORT, json={"name": "Conda"}, headers=staff)
    assert response.status_code == 400
    assert response.json() == {
        "name": ['"Conda" is not a registered adapter. Registered: EESSI, Spack.']
    }


def test_import_source_is_checked_and_passed_on(
    client: TestClient, broker: StubBroker, staff: dict[str, str]
) -> None:
    refused = client.post(
        IMPORT, json={"name": "Spack", "source_url": "file:///srv/mirror.json"}, headers=staff
    )
    assert refused.status_code == 400 and list(refused.json()) == ["source_url"]
    alias = client.post(IMPORT, json={"name": "Spack", "source": "gopher://x/"}, headers=staff)
    assert alias.status_code == 400 and list(alias.json()) == ["source"]
    ok = client.post(
        IMPORT,
        json={"name": "Spack", "version": "2026.08.01", "source_url": "https://1.1.1.1/r.json"},
        headers=staff,
    )
    assert ok.status_code == 202, ok.text
    assert queued(broker)[0]["source"] == "https://1.1.1.1/r.json"


def test_import_of_a_version_upstream_does_not_offer_is_a_400(
    client: TestClient, broker: StubBroker, staff: dict[str, str]
) -> None:
    # Checked against the default upstream's (cached) list: no catalog for a typo.
    refused = client.post(IMPORT, json={"name": "EESSI", "version": "1999.01"}, headers=staff)
    assert refused.status_code == 400
    assert refused.json() == {
        "version": ["EESSI upstream offers no version '1999.01' (it offers: 2025.06, 2023.06)."]
    }
    # A source of the request's own may offer other versions: the worker checks that one.
    own = client.post(
        IMPORT,
        json={"name": "EESSI", "version": "1999.01", "source": "https://1.1.1.1/eessi/"},
        headers=staff,
    )
    assert own.status_code == 202, own.text
    assert [m["version"] for m in queued(broker)] == ["1999.01"]


def test_import_needs_staff(client: TestClient, user: dict[str, str]) -> None:
    assert client.post(IMPORT, json={"name": "EESSI"}).status_code == 401
    assert client.post(IMPORT, json={"name": "EESSI"}, headers=user).status_code == 403


def test_import_without_name_is_a_400(client: TestClient, staff: dict[str, str]) -> None:
    response = client.post(IMPORT, json={}, headers=staff)
    assert response.status_code == 400
    assert response.json() == {"name": ["This field is required."]}


def test_queue_failure_is_a_503(
    client: TestClient,
    broker: StubBroker,
    sample: Sample,
    staff: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("broker gone")

    monkeypatch.setattr(broker, "enqueue", refuse)
    response = client.post(IMPORT, json={"name": "EESSI", "version": "2025.06"}, headers=staff)
    assert response.status_code == 503
    assert "not confirmed as queued" in response.json()["detail"]
    assert "broker gone" in response.json()["detail"]
    assert response.headers["Retry-After"] == "5"
    update = client.post(f"{CATALOGS}{sample.eessi.hex}/update_catalog/", headers=staff)
    assert update.status_code == 503
    assert update.headers["Retry-After"] == "5"


def test_update_catalog_enqueues(
    client: TestClient, broker: StubBroker, sample: Sample, staff: dict[str, str]
) -> None:
    response = client.post(
        f"{CATALOGS}{sample.eessi}/update_catalog/", json={"ignored": True}, headers=staff
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "updating", "catalog_uuid": sample.eessi.hex}
    [message] = queued(broker)
    assert message["actor"] == "update_catalog"
    assert uuid.UUID(message["catalog_uuid"]) == sample.eessi
    assert message["trigger"] == "api"  # the run this command makes is the API's


def test_update_catalog_without_an_adapter_is_a_400(
    client: TestClient, broker: StubBroker, staff: dict[str, str]
) -> None:
    for body in (
        {"name": "Local", "version": "1"},
        {"name": "EESSI", "version": "1", "catalog_type": "source_package"},
    ):
        created = client.post(CATALOGS, json=body, headers=staff).json()
        response = client.post(f"{CATALOGS}{created['uuid']}/update_catalog/", headers=staff)
        assert response.status_code == 400
        assert response.json() == [
            f"No loader configuration found for {created['name']} ({created['catalog_type']})."
        ]
    assert queued(broker) == []


def test_update_catalog_unknown_is_404(client: TestClient, staff: dict[str, str]) -> None:
    response = client.post(f"{CATALOGS}{uuid.uuid4().hex}/update_catalog/", headers=staff)
    assert response.status_code == 404


def test_discover(client: TestClient, sample: Sample, staff: dict[str, str]) -> None:
    response = client.get(DISCOVER, headers=staff)
    assert response.status_code == 200
    assert response.headers["X-Result-Count"] == "2"
    assert response.json() == [
        {
            "name": "EESSI",
            "catalog_type": "binary_runtime",
            "latest_version": "2025.06",
            "existing": True,
            "existing_version": "2023.06",
            "update_available": True,
        },
        {
            "name": "Spack",
            "catalog_type": "source_package",
            "latest_version": "2026.07.01",
            "existing": True,
            "existing_version": "2026.07.01",
            "update_available": False,
        },
    ]
    head = client.head(DISCOVER, headers=staff)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["X-Result-Count"] == "2"


def test_discover_compares_versions_semantically(
    client: TestClient, staff: dict[str, str], adapters: dict[str, FakeAdapter]
) -> None:
    adapters["Spack"].versions = ["10.0"]
    client.post(
        CATALOGS,
        json={"name": "Spack", "version": "9.1", "catalog_type": "source_package"},
        headers=staff,
    )
    client.post(
        CATALOGS,
        json={"name": "Spack", "version": "2.0", "catalog_type": "source_package"},
        headers=staff,
    )
    spack = client.get(DISCOVER, headers=staff).json()[1]
    # "10.0" > "9.1" although it is smaller as a string; the newest existing one is compared.
    # existing_version is Waldur's: the most recently modified catalog (2.0, made last).
    assert spack["existing_version"] == "2.0"
    assert spack["update_available"] is True
    eessi = client.get(DISCOVER, headers=staff).json()[0]
    assert eessi == {
        **eessi,
        "existing": False,
        "existing_version": None,
        "update_available": False,
    }


def test_discover_unreachable_upstream_is_null_and_others_answer(
    client: TestClient, staff: dict[str, str], adapters: dict[str, FakeAdapter]
) -> None:
    adapters["EESSI"].fail = True
    eessi, spack = client.get(DISCOVER, headers=staff).json()
    assert eessi["latest_version"] is None and eessi["update_available"] is False
    assert spack["latest_version"] == "2026.07.01"


def test_discover_is_cached(
    client: TestClient, staff: dict[str, str], adapters: dict[str, FakeAdapter]
) -> None:
    for _ in range(5):
        assert client.get(DISCOVER, headers=staff).status_code == 200
    assert adapters["EESSI"].calls == 1 and adapters["Spack"].calls == 1


def test_discover_needs_staff(client: TestClient, user: dict[str, str]) -> None:
    assert client.get(DISCOVER).status_code == 401
    assert client.get(DISCOVER, headers=user).status_code == 403


def test_force_in_the_bodies_is_passed_on(
    client: TestClient, broker: StubBroker, sample: Sample, staff: dict[str, str]
) -> None:
    update = f"{CATALOGS}{sample.eessi.hex}/update_catalog/"
    assert client.post(update, json={"force": True}, headers=staff).status_code == 202
    assert client.post(update, headers=staff).status_code == 202  # no body, as Waldur sends
    assert client.post(update, json={"force": False}, headers=staff).status_code == 202
    imported = client.post(
        IMPORT, json={"name": "EESSI", "version": "2025.06", "force": True}, headers=staff
    )
    assert imported.status_code == 202, imported.text
    assert [m.get("force") for m in queued(broker)] == [True, None, None, True]
    assert {m["trigger"] for m in queued(broker)} == {"api"}


def test_force_must_be_a_boolean(
    client: TestClient, broker: StubBroker, sample: Sample, staff: dict[str, str]
) -> None:
    update = f"{CATALOGS}{sample.eessi.hex}/update_catalog/"
    for response in (
        client.post(update, json={"force": "maybe"}, headers=staff),
        client.post(IMPORT, json={"name": "EESSI", "force": [1]}, headers=staff),
    ):
        assert response.status_code == 400
        assert list(response.json()) == ["force"]
    assert queued(broker) == []
