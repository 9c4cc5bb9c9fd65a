"""Staff writes on packages, versions and targets (POST, PUT, PATCH, DELETE), as Waldur's
clients send them: answers, DRF-shaped validation errors, permissions, stored counts, and the
response cache. What a sync does with these rows afterwards: test_software_writes_sync.py.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from syncd import cache_events
from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.locks import catalog_transaction
from syncd.db.tables import Catalog, Package
from tests.integration.api.conftest import (
    CATALOGS,
    PACKAGES,
    TARGETS,
    VERSIONS,
    FakeAdapter,
    Sample,
)
from tests.support.derived import assert_no_orphans, derived_packages


def link(collection: str, value: uuid.UUID | str) -> str:
    hexed = value.hex if isinstance(value, uuid.UUID) else value
    return f"http://testserver{collection}{hexed}/"


def counts(client: TestClient, catalog: uuid.UUID) -> tuple[int, int, int]:
    body = client.get(f"{CATALOGS}{catalog.hex}/").json()
    return body["package_count"], body["version_count"], body["target_count"]


def made(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def local_package(client: TestClient, staff: dict[str, str], catalog: uuid.UUID) -> str:
    body = {"catalog": link(CATALOGS, catalog), "name": "site-tools", "description": "Ours"}
    return str(made(client.post(PACKAGES, json=body, headers=staff))["uuid"])


def test_staff_creates_a_package_a_version_and_a_target(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    before = counts(client, sample.eessi)
    package = made(
        client.post(
            PACKAGES,
            json={
                "catalog": link(CATALOGS, sample.eessi),
                "name": "  site-tools ",
                "description": "Tools of this site",
                "homepage": "https://tools.example.org/",
                "is_extension": False,
                "categories": ["ignored: read-only in Waldur"],
            },
            headers=staff,
        )
    )
    assert package["name"] == "site-tools"  # trimmed, as DRF's CharField does
    assert package["is_local"] is True
    assert package["categories"] == []
    assert package["catalog_uuid"] == sample.eessi.hex
    assert package["url"] == link(PACKAGES, package["uuid"])
    version = made(
        client.post(
            VERSIONS,
            json={
                "package": package["url"],
                "version": "2.0",
                "module_version": "2.0-GCC-13.2.0",
                "release_date": "2026-03-01",
                "metadata": {"toolchain": {"name": "GCC", "version": "13.2.0"}},
                "dependencies": ["zlib"],
            },
            headers=staff,
        )
    )
    assert version["is_local"] is True
    assert version["package_uuid"] == package["uuid"]
    assert version["toolchain"] == {"name": "GCC", "version": "13.2.0"}
    target = made(
        client.post(
            TARGETS,
            json={
                "version": f"{VERSIONS}{version['uuid']}/",  # a relative link is fine too
                "target_type": "cpu_architecture",
                "target_name": "x86_64",
                "target_subtype": "generic",
                "location": "/cvmfs/site/x86_64/generic",
                "gpu_architectures": ["nvidia/cc90"],
            },
            headers=staff,
        )
    )
    assert target["is_local"] is True
    assert target["version_uuid"] == version["uuid"]
    # Stored counts follow, so the unfiltered lists' X-Result-Count stays true.
    assert counts(client, sample.eessi) == (before[0] + 1, before[1] + 1, before[2] + 1)
    listed = client.get(PACKAGES)
    assert int(listed.headers["X-Result-Count"]) == len(listed.json()) == 5
    detail = client.get(f"{PACKAGES}{package['uuid']}/").json()
    assert detail["version_count"] == 1
    assert [v["version"] for v in detail["versions"]] == ["2.0"]
    assert [t["target_name"] for t in detail["versions"][0]["targets"]] == ["x86_64"]
    found = client.get(TARGETS, params={"cpu_microarchitecture": "generic"}).json()
    assert target["uuid"] in [t["uuid"] for t in found]


def test_writes_need_a_staff_token(
    client: TestClient, sample: Sample, staff: dict[str, str], user: dict[str, str]
) -> None:
    python = sample.packages["python"].hex
    version = sample.versions["python/3.11.3"].hex
    target = sample.targets["python/3.11.3/x86_64/amd/zen2"].hex
    a_target = {"target_type": "t", "target_name": "n"}
    writes = [
        ("POST", PACKAGES, {"catalog": link(CATALOGS, sample.eessi), "name": "x"}),
        ("PUT", f"{PACKAGES}{python}/", {"catalog": link(CATALOGS, sample.eessi), "name": "x"}),
        ("PATCH", f"{PACKAGES}{python}/", {"description": "x"}),
        ("DELETE", f"{PACKAGES}{python}/", None),
        ("POST", VERSIONS, {"package": link(PACKAGES, python), "version": "9"}),
        ("PATCH", f"{VERSIONS}{version}/", {"metadata": {}}),
        ("DELETE", f"{VERSIONS}{version}/", None),
        ("POST", TARGETS, {"version": link(VERSIONS, version), **a_target}),
        ("PUT", f"{TARGETS}{target}/", {"version": link(VERSIONS, version), **a_target}),
        ("DELETE", f"{TARGETS}{target}/", None),
    ]  # fmt: skip
    before = client.get(f"{PACKAGES}{python}/").json()
    for method, url, body in writes:
        anonymous = client.request(method, url, json=body)
        assert anonymous.status_code == 401, (method, url, anonymous.text)
        assert anonymous.json() == {"detail": "Authentication credentials were not provided."}
        refused = client.request(method, url, json=body, headers=user)
        assert refused.status_code == 403, (method, url, refused.text)
        assert refused.json() == {"detail": "You do not have permission to perform this action."}
    assert client.get(f"{PACKAGES}{python}/").json() == before
    assert counts(client, sample.eessi) == (3, 4, 5)
    allowed = client.options(f"{PACKAGES}{python}/", headers=staff).headers["Allow"]
    assert allowed == "GET, PUT, PATCH, DELETE, HEAD, OPTIONS"


def test_package_bodies_are_validated_as_drf_does(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    eessi = link(CATALOGS, sample.eessi)

    def refused(body: Any, method: str = "POST", url: str = PACKAGES) -> Any:
        answer = client.request(method, url, json=body, headers=staff)
        assert answer.status_code == 400, answer.text
        return answer.json()

    assert refused({}) == {
        "catalog": ["This field is required."],
        "name": ["This field is required."],
    }
    assert refused({"catalog": eessi, "name": "  ", "homepage": "not a url"}) == {
        "name": ["This field may not be blank."],
        "homepage": ["Enter a valid URL."],
    }
    assert refused({"catalog": eessi, "name": "n" * 201}) == {
        "name": ["Ensure this field has no more than 200 characters."]
    }
    assert refused({"catalog": "https://elsewhere.example/nothing/", "name": "a"}) == {
        "catalog": ["Invalid hyperlink - No URL match."]
    }
    assert refused({"catalog": link(PACKAGES, sample.packages["python"]), "name": "a"}) == {
        "catalog": ["Invalid hyperlink - Incorrect URL match."]
    }
    assert refused({"catalog": link(CATALOGS, uuid.uuid4()), "name": "a"}) == {
        "catalog": ["Invalid hyperlink - Object does not exist."]
    }
    assert refused({"catalog": 7, "name": "a"}) == {
        "catalog": ["Incorrect type. Expected URL string, received int."]
    }
    assert refused({"catalog": "", "name": "a"}) == {"catalog": ["This field may not be null."]}
    # A name the catalog already has (an upstream package's): DRF's unique-together message.
    assert refused({"catalog": eessi, "name": "python"}) == {
        "non_field_errors": ["The fields catalog, name must make a unique set."]
    }
    python = f"{PACKAGES}{sample.packages['python'].hex}/"
    assert refused({"name": None}, "PATCH", python) == {"name": ["This field may not be null."]}
    assert refused({"description": "x"}, "PUT", python) == {
        "catalog": ["This field is required."],
        "name": ["This field is required."],
    }
    assert counts(client, sample.eessi) == (3, 4, 5)


def test_version_and_target_bodies_are_validated(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    python = link(PACKAGES, sample.packages["python"])
    answer = client.post(
        VERSIONS,
        json={"package": python, "version": "3.11.3", "module_version": "3.11.3"},
        headers=staff,
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "non_field_errors": ["The fields package, version, module_version must make a unique set."]
    }
    answer = client.post(
        VERSIONS, json={"package": python, "version": "", "metadata": ["x"]}, headers=staff
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "version": ["This field may not be blank."],
        "metadata": ['Expected a dictionary of items but got type "list".'],
    }
    # What a version object derives from its metadata keeps its shape (module objects).
    answer = client.post(
        VERSIONS,
        json={"package": python, "version": "9", "metadata": {"module": {"module_name": 3}}},
        headers=staff,
    )
    assert answer.status_code == 400
    assert list(answer.json()) == ["metadata"]
    assert answer.json()["metadata"][0].startswith('"module" must be an object whose')
    # Whether the linked object exists is asked once the body is otherwise valid.
    answer = client.post(
        VERSIONS, json={"package": link(PACKAGES, uuid.uuid4()), "version": "1"}, headers=staff
    )
    assert answer.status_code == 400
    assert answer.json() == {"package": ["Invalid hyperlink - Object does not exist."]}
    version = link(VERSIONS, sample.versions["python/3.11.3"])
    answer = client.post(
        TARGETS,
        json={
            "version": version,
            "target_type": "cpu_architecture",
            "target_name": "x86_64",
            "target_subtype": "amd/zen2",
        },
        headers=staff,
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "non_field_errors": [
            "The fields version, target_type, target_name, target_subtype must make a unique set."
        ]
    }
    answer = client.post(
        TARGETS, json={"version": version, "gpu_architectures": "nvidia/cc90"}, headers=staff
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "target_type": ["This field is required."],
        "target_name": ["This field is required."],
        "gpu_architectures": ['Expected a list of items but got type "str".'],
    }
    assert counts(client, sample.eessi) == (3, 4, 5)


def test_upstream_rows_take_content_edits_but_keep_their_identity(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    python = f"{PACKAGES}{sample.packages['python'].hex}/"
    edited = made(
        client.patch(python, json={"description": "Edited", "homepage": None}, headers=staff), 200
    )
    assert (edited["description"], edited["homepage"], edited["is_local"]) == (
        "Edited",
        None,
        False,
    )
    assert client.get(python).json()["description"] == "Edited"
    # PUT with the same catalog and name (as a client that read the object sends it) is fine.
    same = {"catalog": edited["catalog"], "name": "python", "description": "Again"}
    assert made(client.put(python, json=same, headers=staff), 200)["description"] == "Again"
    answer = client.patch(python, json={"name": "python3"}, headers=staff)
    assert answer.status_code == 400
    assert list(answer.json()) == ["name"]
    answer = client.patch(python, json={"catalog": link(CATALOGS, sample.spack)}, headers=staff)
    assert answer.status_code == 400
    assert list(answer.json()) == ["catalog"]
    version = f"{VERSIONS}{sample.versions['python/3.11.3'].hex}/"
    meta = {"toolchain": {"name": "foss", "version": "2024a"}}
    assert made(client.patch(version, json={"metadata": meta}, headers=staff), 200)[
        "toolchain"
    ] == {"name": "foss", "version": "2024a"}
    answer = client.patch(version, json={"version": "3.11.4"}, headers=staff)
    assert (answer.status_code, list(answer.json())) == (400, ["version"])
    target = f"{TARGETS}{sample.targets['python/3.11.3/x86_64/amd/zen2'].hex}/"
    moved = made(client.patch(target, json={"location": "/site/zen2"}, headers=staff), 200)
    assert moved["location"] == "/site/zen2"
    answer = client.patch(target, json={"target_subtype": "amd/zen3"}, headers=staff)
    assert (answer.status_code, list(answer.json())) == (400, ["target_subtype"])
    for gone in (f"{PACKAGES}{uuid.uuid4().hex}/", f"{VERSIONS}nonsense/"):
        assert client.patch(gone, json={}, headers=staff).status_code == 404
        assert client.delete(gone, headers=staff).status_code == 404


def test_local_rows_are_renamed_moved_and_deleted_with_their_counts(
    client: TestClient, sample: Sample, staff: dict[str, str], engine: Engine
) -> None:
    package = local_package(client, staff, sample.eessi)
    version = made(
        client.post(
            VERSIONS, json={"package": link(PACKAGES, package), "version": "1.0"}, headers=staff
        )
    )["uuid"]
    for arch in ("x86_64", "aarch64"):
        body = {"version": link(VERSIONS, version), "target_type": "cpu", "target_name": arch}
        made(client.post(TARGETS, json=body, headers=staff))
    assert counts(client, sample.eessi) == (4, 5, 7)
    renamed = made(
        client.put(
            f"{PACKAGES}{package}/",
            json={"catalog": link(CATALOGS, sample.spack), "name": "site-tools-2"},
            headers=staff,
        ),
        200,
    )
    assert (renamed["name"], renamed["catalog_uuid"]) == ("site-tools-2", sample.spack.hex)
    # The package took its version and targets along: both catalogs' counts follow.
    assert counts(client, sample.eessi) == (3, 4, 5)
    assert counts(client, sample.spack) == (2, 3, 3)
    assert_no_orphans(engine)  # its read model moved along (its catalog_id is the package's)
    spack_targets = client.get(TARGETS, params={"catalog_uuid": sample.spack.hex}).json()
    assert {t["target_name"] for t in spack_targets} >= {"x86_64", "aarch64"}
    # A local version moves to an upstream package of the same catalog.
    gromacs = link(PACKAGES, sample.packages["gromacs"])
    moved = made(
        client.patch(f"{VERSIONS}{version}/", json={"package": gromacs}, headers=staff), 200
    )
    assert moved["package_name"] == "gromacs"
    assert client.get(f"{PACKAGES}{package}/").json()["version_count"] == 0
    assert client.get(f"{PACKAGES}{sample.packages['gromacs'].hex}/").json()["version_count"] == 3
    assert client.delete(f"{VERSIONS}{version}/", headers=staff).status_code == 204
    assert counts(client, sample.spack) == (2, 2, 1)
    assert client.get(f"{VERSIONS}{version}/").status_code == 404
    assert client.delete(f"{PACKAGES}{package}/", headers=staff).status_code == 204
    assert counts(client, sample.spack) == (1, 2, 1)
    # An upstream package can be deleted too (the next sync brings it back, see the docs);
    # its parent loses the extension.
    numpy = sample.packages["numpy"].hex
    with engine.connect() as conn:
        numpy_id = conn.scalar(select(Package.id).where(Package.uuid == sample.packages["numpy"]))
    assert numpy_id in derived_packages(engine)["package_search"]
    assert client.delete(f"{PACKAGES}{numpy}/", headers=staff).status_code == 204
    # Its derived rows went with it, as the local package's did.
    assert all(numpy_id not in held for held in derived_packages(engine).values())
    assert_no_orphans(engine)
    assert counts(client, sample.eessi) == (2, 3, 4)
    assert client.get(f"{PACKAGES}{sample.packages['python'].hex}/").json()["extension_count"] == 0


def test_local_versions_sort_among_upstream_ones(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    python = link(PACKAGES, sample.packages["python"])
    for number in ("3.12.1", "3.10.9"):
        made(client.post(VERSIONS, json={"package": python, "version": number}, headers=staff))
    detail = client.get(f"{PACKAGES}{sample.packages['python'].hex}/").json()
    # Nested oldest first, as Waldur lists a package's versions.
    assert [v["version"] for v in detail["versions"]] == ["3.10.8", "3.10.9", "3.11.3", "3.12.1"]
    assert detail["version_count"] == 4


def test_a_write_clears_every_response_cache_of_the_process(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    adapters: dict[str, FakeAdapter],
    client: TestClient,
    sample: Sample,
    staff: dict[str, str],
) -> None:
    """A second app in the same process (as in `syncd run` beside a worker) caches reads;
    a write through the first one reaches it through cache_events, not through its own
    middleware."""
    cached_settings = replace(settings, api_cache_seconds=30.0)
    other = create_app(
        cached_settings, engine=engine, broker=broker, adapters=adapters, fetcher=object()
    )
    signals: list[int] = []
    unsubscribe = cache_events.on_data_changed(lambda: signals.append(1))
    try:
        with TestClient(other) as reader:
            names = [p["name"] for p in reader.get(PACKAGES).json()]
            assert "site-tools" not in names
            local_package(client, staff, sample.eessi)
            assert signals
            assert "site-tools" in [p["name"] for p in reader.get(PACKAGES).json()]
    finally:
        unsubscribe()


def test_a_write_waits_for_a_sync_of_its_catalog(
    client: TestClient,
    engine: Engine,
    sample: Sample,
    staff: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sync holds the catalog's lock for its whole transaction: a hand write waits for it,
    and past HAND_WRITE_LOCK_SECONDS answers 503 having written nothing."""
    from syncd.service import hand_writes  # here: the module is new, the file is older

    with engine.connect() as conn:
        catalog_id = conn.execute(select(Catalog.id).where(Catalog.uuid == sample.eessi)).scalar()
    holding, release = threading.Event(), threading.Event()

    def sync_holding_the_lock() -> None:
        with catalog_transaction(engine, catalog_id, timeout=5):
            holding.set()
            release.wait(30)

    syncing = threading.Thread(target=sync_holding_the_lock)
    syncing.start()
    try:
        assert holding.wait(10)
        monkeypatch.setattr(hand_writes, "HAND_WRITE_LOCK_SECONDS", 0.3)
        body = {"catalog": link(CATALOGS, sample.eessi), "name": "while-syncing"}
        busy = client.post(PACKAGES, json=body, headers=staff)
        assert busy.status_code == 503, busy.text
        assert busy.headers["Retry-After"] == "5"
        assert busy.json()["detail"].startswith("Nothing was written; try again")
    finally:
        release.set()
        syncing.join(10)
    assert client.get(PACKAGES, params={"name_exact": "while-syncing"}).json() == []
    assert client.post(PACKAGES, json=body, headers=staff).status_code == 201


def test_the_openapi_document_names_the_writes_as_waldurs_clients(client: TestClient) -> None:
    """js-client's marketplaceSoftwarePackagesCreate... are these operation ids camel-cased."""
    paths = client.get("/api/schema/").json()["paths"]
    found = {
        (op["operationId"], method, path, next(iter(op["responses"])))
        for path, ops in paths.items()
        for method, op in ops.items()
        if method in {"post", "put", "patch", "delete"}
        and path.startswith(
            (
                "/api/marketplace-software-packages/",
                "/api/marketplace-software-versions/",
                "/api/marketplace-software-targets/",
            )
        )
    }
    expected = set()
    for kind in ("packages", "versions", "targets"):
        base = f"/api/marketplace-software-{kind}/"
        name = f"marketplace_software_{kind}"
        expected |= {
            (f"{name}_create", "post", base, "201"),
            (f"{name}_update", "put", base + "{uuid}/", "200"),
            (f"{name}_partial_update", "patch", base + "{uuid}/", "200"),
            (f"{name}_destroy", "delete", base + "{uuid}/", "204"),
        }
    assert found == expected
    create = paths["/api/marketplace-software-packages/"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SoftwarePackageRequest"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PackageOut"
    }
