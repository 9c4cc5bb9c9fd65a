"""What Waldur's UI reads to offer CPU restrictions: a catalog's
`supports_cpu_target_restrictions` and its cpu_targets when architectures_map maps hardware
to another build."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.integration.api.conftest import CATALOGS, Sample


def _create(client: TestClient, staff: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = client.post(
        CATALOGS, json={"name": "EESSI", "version": "2025.06", **fields}, headers=staff
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_mapped_build_gives_the_build_family_and_microarchitecture(
    client: TestClient, staff: dict[str, str]
) -> None:
    # Waldur's cpu_targets_for_catalog: the key is the hardware (full_arch), the value the
    # compatible build whose family/microarchitecture the targets carry; empty means itself.
    arch_map = {
        "2025.06": {
            "x86_64/intel/sapphirerapids": "x86_64/intel/icelake",
            "x86_64/generic": "",
            "aarch64/a64fx": "aarch64/neoverse_v1",
            "x86_64": None,
        },
        "2023.06": {"x86_64/amd/zen2": "x86_64/amd/zen2"},
    }
    created = _create(client, staff, metadata={"architectures_map": arch_map})
    targets = client.get(f"{CATALOGS}{created['uuid']}/cpu_targets/").json()
    assert targets == [
        {
            "cpu_family": "aarch64",
            "cpu_microarchitecture": "neoverse_v1",
            "full_arch": "aarch64/a64fx",
        },
        {"cpu_family": "x86_64", "cpu_microarchitecture": "generic", "full_arch": "x86_64"},
        {"cpu_family": "x86_64", "cpu_microarchitecture": "generic", "full_arch": "x86_64/generic"},
        {
            "cpu_family": "x86_64",
            "cpu_microarchitecture": "intel/icelake",
            "full_arch": "x86_64/intel/sapphirerapids",
        },
    ]


def test_a_list_of_paths_maps_each_to_itself(client: TestClient, staff: dict[str, str]) -> None:
    arch_map = {"2025.06": ["x86_64/amd/zen4", "", 7, "aarch64/generic"]}
    created = _create(client, staff, metadata={"architectures_map": arch_map})
    targets = client.get(f"{CATALOGS}{created['uuid']}/cpu_targets/").json()
    assert [(t["full_arch"], t["cpu_microarchitecture"]) for t in targets] == [
        ("aarch64/generic", "generic"),
        ("x86_64/amd/zen4", "amd/zen4"),
    ]


def test_other_stack_versions_only_give_no_targets(
    client: TestClient, staff: dict[str, str]
) -> None:
    arch_map = {"2023.06": ["x86_64/amd/zen2"]}
    created = _create(client, staff, metadata={"architectures_map": arch_map})
    assert client.get(f"{CATALOGS}{created['uuid']}/cpu_targets/").json() == []


def test_a_map_not_keyed_by_the_catalogs_version_gives_no_targets(
    client: TestClient, staff: dict[str, str]
) -> None:
    # Waldur reads architectures_map[catalog.version] only: a map of this version's hardware
    # without the version key is not one.
    flat = {"x86_64/amd/zen4": "x86_64/amd/zen4", "aarch64/generic": "aarch64/generic"}
    created = _create(client, staff, metadata={"architectures_map": flat})
    assert client.get(f"{CATALOGS}{created['uuid']}/cpu_targets/").json() == []


def test_every_catalog_answer_says_whether_it_supports_cpu_restrictions(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    flag = "supports_cpu_target_restrictions"
    listed = {c["name"]: c[flag] for c in client.get(CATALOGS).json()}
    assert listed == {"EESSI": True, "Spack": False}
    assert client.get(f"{CATALOGS}{sample.eessi.hex}/").json()[flag] is True
    assert client.get(f"{CATALOGS}{sample.spack.hex}/").json()[flag] is False
    assert client.get(f"{CATALOGS}{sample.eessi.hex}/?field={flag}").json() == {flag: True}

    created = _create(client, staff, name="Local", catalog_type="package_manager")
    assert created[flag] is False
    url = f"{CATALOGS}{created['uuid']}/"
    # Read-only: a client cannot set it, only the catalog type decides.
    patched = client.patch(url, json={flag: True}, headers=staff).json()
    assert patched[flag] is False
    patched = client.patch(url, json={"catalog_type": "binary_runtime"}, headers=staff).json()
    assert patched[flag] is True
    put = client.put(
        url, json={"name": "Local", "version": "1", "catalog_type": "source_package"}, headers=staff
    ).json()
    assert put[flag] is False


def test_the_openapi_document_describes_it(client: TestClient) -> None:
    schemas = client.get("/api/schema/").json()["components"]["schemas"]
    field = schemas["CatalogOut"]["properties"]["supports_cpu_target_restrictions"]
    assert field["type"] == "boolean" and field["readOnly"] is True
    assert "supports_cpu_target_restrictions" in schemas["CatalogOut"]["required"]
