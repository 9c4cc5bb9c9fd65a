"""Waldur's provider-offering software catalog actions through HTTP, on SQLite and
PostgreSQL: add_software_catalog, update_software_catalog, remove_software_catalog, the
offering's `software_catalogs`, who may call them, and the CPU values checked against the
catalog's cpu_targets.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from syncd.tokens import create_token
from tests.integration.api.conftest import Sample

OFFERING = uuid.UUID("5b1c0e3f7c9d4d8e9a4f2c6b8d0e1f23")
OTHER_OFFERING = uuid.UUID("0f9e8d7c6b5a49382716a5b4c3d2e1f0")
PROVIDER = "/api/marketplace-provider-offerings/"
NOT_FOUND = {"error": "Software catalog association not found"}


def _url(action: str, offering: uuid.UUID = OFFERING) -> str:
    return f"{PROVIDER}{offering.hex}/{action}/"


def _add(
    client: TestClient,
    headers: dict[str, str],
    catalog: uuid.UUID,
    offering: uuid.UUID = OFFERING,
    **body: Any,
) -> Any:
    """add_software_catalog with the body Waldur's web UI sends (offering included)."""
    payload = {"offering": offering.hex, "catalog": catalog.hex, **body}
    return client.post(_url("add_software_catalog", offering), json=payload, headers=headers)


def _links(client: TestClient, offering: uuid.UUID = OFFERING) -> list[dict[str, Any]]:
    response = client.get(f"{PROVIDER}{offering.hex}/")
    assert response.status_code == 200, response.text
    links: list[dict[str, Any]] = response.json()["software_catalogs"]
    return links


@pytest.fixture
def provider(session_factory: sessionmaker[Session]) -> dict[str, str]:
    """A token granted OFFERING only (Waldur: an owner of the offering's organisation)."""
    with session_factory() as session:
        _, key = create_token(session, name="provider", offerings=[OFFERING])
        session.commit()
    return {"Authorization": f"Token {key}"}


# --- add_software_catalog --------------------------------------------------------------


def test_add_links_the_catalog_and_the_offering_shows_it(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    response = _add(
        client,
        staff,
        sample.eessi,
        enabled_cpu_family=["x86_64", "aarch64"],
        enabled_cpu_microarchitectures=["amd/zen2", "generic"],
    )
    assert response.status_code == 201, response.text
    link = response.json()["uuid"]
    assert uuid.UUID(link).hex == link and list(response.json()) == ["uuid"]
    assert _links(client) == [
        {
            "uuid": link,
            "catalog": {
                "uuid": sample.eessi.hex,
                "name": "EESSI",
                "version": "2023.06",
                "description": "European Environment for Scientific Software Installations",
                "supports_cpu_target_restrictions": True,
            },
            "enabled_cpu_family": ["x86_64", "aarch64"],
            "enabled_cpu_microarchitectures": ["amd/zen2", "generic"],
            "package_count": 3,
            "partition": None,
        }
    ]
    # The public offering page reads the same; `?field=` picks keys as Waldur's does.
    public = client.get(f"/api/marketplace-public-offerings/{OFFERING}/?field=software_catalogs")
    assert public.json() == {"software_catalogs": _links(client)}
    assert _links(client, OTHER_OFFERING) == []


def test_add_keeps_the_partition_and_takes_any_values_for_a_catalog_without_cpu_targets(
    client: TestClient, sample: Sample, provider: dict[str, str]
) -> None:
    partition = uuid.uuid4()
    response = _add(
        client,
        provider,
        sample.spack,
        enabled_cpu_family=["x86_64"],
        enabled_cpu_microarchitectures=["zen3"],
        partition=str(partition),
    )
    assert response.status_code == 201, response.text
    [link] = _links(client)
    assert link["partition"] == {"uuid": partition.hex}
    assert link["enabled_cpu_microarchitectures"] == ["zen3"]
    assert link["catalog"]["supports_cpu_target_restrictions"] is False
    assert link["package_count"] == 1


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"catalog": None}, {"catalog": ["This field may not be null."]}),
        ({"catalog": "nope"}, {"catalog": ["“nope” is not a valid UUID."]}),
        (
            {"catalog": "00000000000000000000000000000001"},
            {"catalog": ["Object with uuid=00000000000000000000000000000001 does not exist."]},
        ),
        (
            {"enabled_cpu_family": "x86_64"},
            {"enabled_cpu_family": ['Expected a list of items but got type "str".']},
        ),
        (
            {"enabled_cpu_family": ["x86_64", None, True, " "]},
            {
                "enabled_cpu_family": {
                    "1": ["This field may not be null."],
                    "2": ["Not a valid string."],
                    "3": ["This field may not be blank."],
                }
            },
        ),
        (
            {
                "enabled_cpu_family": ["sparc"],
                "enabled_cpu_microarchitectures": ["generic", "zen3"],
            },
            {
                "enabled_cpu_family": {"0": ['"sparc" is not a valid choice.']},
                "enabled_cpu_microarchitectures": {"1": ['"zen3" is not a valid choice.']},
            },
        ),
    ],
    ids=["null", "malformed", "unknown", "not-a-list", "bad-items", "not-a-cpu-target"],
)
def test_add_refuses_what_waldur_refuses_and_values_the_catalog_has_no_target_for(
    client: TestClient,
    sample: Sample,
    staff: dict[str, str],
    body: dict[str, Any],
    errors: dict[str, Any],
) -> None:
    response = client.post(
        _url("add_software_catalog"), json={"catalog": sample.eessi.hex, **body}, headers=staff
    )
    assert response.status_code == 400
    assert response.json() == errors
    assert _links(client) == []


def test_add_without_catalog_and_twice(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    missing = client.post(_url("add_software_catalog"), json={}, headers=staff)
    assert missing.status_code == 400
    assert missing.json() == {"catalog": ["This field is required."]}
    assert _add(client, staff, sample.eessi).status_code == 201
    again = _add(client, staff, sample.eessi)
    assert again.status_code == 400
    assert again.json() == {
        "non_field_errors": ["The fields offering, catalog must make a unique set."]
    }
    # The same catalog on another offering is another link.
    assert _add(client, staff, sample.eessi, OTHER_OFFERING).status_code == 201
    assert len(_links(client)) == 1 and len(_links(client, OTHER_OFFERING)) == 1


# --- who may ---------------------------------------------------------------------------


def test_permissions_map_waldurs_update_offering(
    client: TestClient,
    sample: Sample,
    staff: dict[str, str],
    user: dict[str, str],
    provider: dict[str, str],
) -> None:
    body = {"catalog": sample.eessi.hex}
    add = _url("add_software_catalog")
    anonymous = client.post(add, json=body)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Authentication credentials were not provided."}
    bad_token = client.post(add, json=body, headers={"Authorization": "Token nope"})
    assert bad_token.status_code == 401
    # A token that may only read, and one granted another offering: Waldur's 403.
    for headers, offering in ((user, OFFERING), (provider, OTHER_OFFERING)):
        refused = client.post(_url("add_software_catalog", offering), json=body, headers=headers)
        assert refused.status_code == 403
        assert refused.json() == {"detail": "You do not have permission to perform this action."}
    # Refused before the body is read, as Waldur checks the offering before its serializer.
    assert client.post(add, json={"catalog": 1}, headers=user).status_code == 403
    not_an_offering = client.post(
        f"{PROVIDER}not-a-uuid/add_software_catalog/", json=body, headers=staff
    )
    assert not_an_offering.status_code == 404
    assert not_an_offering.json() == {"detail": "Not found."}
    assert _links(client) == [] and _links(client, OTHER_OFFERING) == []

    created = client.post(add, json=body, headers=provider)
    assert created.status_code == 201
    link = created.json()["uuid"]
    patch = {"offering_catalog_uuid": link, "enabled_cpu_family": ["x86_64"]}
    update = _url("update_software_catalog")
    assert client.patch(update, json=patch, headers=user).status_code == 403
    assert client.patch(update, json=patch, headers=provider).status_code == 200
    remove = _url("remove_software_catalog")
    assert client.post(remove, json={"offering_catalog_uuid": link}).status_code == 401
    assert (
        client.post(remove, json={"offering_catalog_uuid": link}, headers=user).status_code == 403
    )
    assert (
        client.post(remove, json={"offering_catalog_uuid": link}, headers=staff).status_code == 204
    )


# --- update_software_catalog -----------------------------------------------------------


def test_update_changes_the_fields_sent_and_answers_the_link(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    partition = uuid.uuid4()
    link = _add(
        client,
        staff,
        sample.eessi,
        enabled_cpu_family=["x86_64"],
        enabled_cpu_microarchitectures=["generic"],
        partition=partition.hex,
    ).json()["uuid"]
    response = client.patch(
        _url("update_software_catalog"),
        json={"offering_catalog_uuid": link, "enabled_cpu_microarchitectures": ["intel/haswell"]},
        headers=staff,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) >= {"created", "modified"}
    assert {k: v for k, v in answer.items() if k not in ("created", "modified")} == {
        "uuid": link,
        "offering": OFFERING.hex,
        "catalog": sample.eessi.hex,
        "offering_name": "",
        "catalog_name": "EESSI",
        "catalog_version": "2023.06",
        "enabled_cpu_family": ["x86_64"],
        "enabled_cpu_microarchitectures": ["intel/haswell"],
        "partition": partition.hex,
        "partition_name": "",
    }
    # Null clears the partition; the hyphenated uuid names the link as well.
    cleared = client.patch(
        _url("update_software_catalog"),
        json={"offering_catalog_uuid": str(uuid.UUID(link)), "partition": None},
        headers=staff,
    )
    assert cleared.json()["partition"] is None
    assert _links(client)[0]["enabled_cpu_microarchitectures"] == ["intel/haswell"]


def test_update_moves_the_link_to_another_catalog_once_its_values_fit(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    link = _add(client, staff, sample.spack, enabled_cpu_microarchitectures=["zen3"]).json()
    update = _url("update_software_catalog")
    # The stored "zen3" moves along and EESSI 2023.06 has no such target.
    moved = client.patch(
        update,
        json={"offering_catalog_uuid": link["uuid"], "catalog": sample.eessi.hex},
        headers=staff,
    )
    assert moved.status_code == 400
    assert moved.json() == {
        "enabled_cpu_microarchitectures": {"0": ['"zen3" is not a valid choice.']}
    }
    fixed = client.patch(
        update,
        json={
            "offering_catalog_uuid": link["uuid"],
            "catalog": sample.eessi.hex,
            "enabled_cpu_microarchitectures": ["amd/zen2"],
        },
        headers=staff,
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["catalog"] == sample.eessi.hex
    assert _links(client)[0]["catalog"]["name"] == "EESSI"


def test_update_errors(client: TestClient, sample: Sample, staff: dict[str, str]) -> None:
    eessi_link = _add(client, staff, sample.eessi).json()["uuid"]
    spack_link = _add(client, staff, sample.spack).json()["uuid"]
    foreign = _add(client, staff, sample.eessi, OTHER_OFFERING).json()["uuid"]
    update = _url("update_software_catalog")

    def patch(body: dict[str, Any] | None) -> Any:
        return client.patch(update, json=body, headers=staff)

    for body in (None, {}, {"offering_catalog_uuid": "x"}, {"offering_catalog_uuid": foreign}):
        response = patch(body)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), body
    taken = patch({"offering_catalog_uuid": spack_link, "catalog": sample.eessi.hex})
    assert taken.status_code == 400
    assert taken.json() == {"catalog": ["This software catalog is already linked to the offering."]}
    nulls = patch(
        {"offering_catalog_uuid": eessi_link, "catalog": None, "enabled_cpu_family": None}
    )
    assert nulls.status_code == 400
    assert nulls.json() == {
        "catalog": ["This field may not be null."],
        "enabled_cpu_family": ["This field may not be null."],
    }
    wrong = patch({"offering_catalog_uuid": eessi_link, "enabled_cpu_family": ["riscv64"]})
    assert wrong.json() == {"enabled_cpu_family": {"0": ['"riscv64" is not a valid choice.']}}
    # Keeping its own catalog is no conflict.
    same = patch({"offering_catalog_uuid": eessi_link, "catalog": sample.eessi.hex})
    assert same.status_code == 200
    assert [link["catalog"]["name"] for link in _links(client)] == ["EESSI", "Spack"]


# --- remove_software_catalog -----------------------------------------------------------


def test_remove_unlinks_only_the_offerings_own_link(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    link = _add(client, staff, sample.eessi).json()["uuid"]
    foreign = _add(client, staff, sample.eessi, OTHER_OFFERING).json()["uuid"]
    remove = _url("remove_software_catalog")
    for body in (None, {"offering_catalog_uuid": foreign}, {"offering_catalog_uuid": 7}):
        response = client.post(remove, json=body, headers=staff)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), body
    assert len(_links(client, OTHER_OFFERING)) == 1
    gone = client.post(remove, json={"offering_catalog_uuid": link}, headers=staff)
    assert gone.status_code == 204 and gone.content == b""
    assert _links(client) == []
    again = client.post(remove, json={"offering_catalog_uuid": link}, headers=staff)
    assert (again.status_code, again.json()) == (404, NOT_FOUND)


def test_reading_an_offering(client: TestClient, user: dict[str, str]) -> None:
    assert client.get(f"{PROVIDER}{OFFERING}/").json() == {
        "uuid": OFFERING.hex,
        "software_catalogs": [],
    }
    assert client.head(f"{PROVIDER}{OFFERING}/", headers=user).status_code == 200
    assert client.get(f"{PROVIDER}nope/").status_code == 404
