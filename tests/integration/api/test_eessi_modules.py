"""EESSI modules over the API after a real sync of pre-2026 data: required_modules and
dependencies are Waldur's module objects, an extension's module_version is its parent
module's version, and the OpenAPI document says so."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from syncd.db.tables import Catalog
from syncd.sync import sync_catalog
from tests.integration.api.conftest import PACKAGES, VERSIONS
from tests.support import upstream_data
from tests.support.eessi_old_format import documents, snapshot


def module(full: str) -> dict[str, str]:
    name, _, version = full.partition("/")
    return {"full_module_name": full, "module_name": name, "module_version": version}


def import_old_format(engine: Engine) -> None:
    doc = upstream_data.eessi_document_with_atk()
    with engine.begin() as conn:
        result = conn.execute(
            insert(Catalog).values(name="EESSI", version="2023.06", catalog_type="binary_runtime")
        )
        assert result.inserted_primary_key is not None
        catalog_id = int(result.inserted_primary_key[0])
    sync_catalog(engine, catalog_id, snapshot(documents(doc, old=True), "2023.06"))


def one(client: TestClient, url: str, **params: str) -> dict[str, Any]:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    items = response.json()
    assert len(items) == 1, items
    item: dict[str, Any] = items[0]
    return item


def test_modules_are_objects_and_builds_are_versions(client: TestClient, engine: Engine) -> None:
    import_old_format(engine)
    atk = one(client, PACKAGES, name_exact="ATK")
    detail = client.get(f"{PACKAGES}{atk['uuid']}/").json()
    # Oldest first, as Waldur nests them (same version: by module version).
    assert [v["module_version"] for v in detail["versions"]] == [
        "2.38.0-GCCcore-12.2.0",
        "2.38.0-GCCcore-12.3.0",
        "2.38.0-GCCcore-13.2.0",
    ]
    nested = detail["versions"][0]
    assert nested["module"] == module("ATK/2.38.0-GCCcore-12.2.0")
    assert nested["modulename"] == "ATK/2.38.0-GCCcore-12.2.0"
    assert nested["required_modules"] == [
        module("EESSI/2023.06"),
        module("GCCcore/12.2.0"),
        module("ATK/2.38.0-GCCcore-12.2.0"),
    ]

    versions = client.get(VERSIONS, params={"package_uuid": atk["uuid"]}).json()
    oldest = next(v for v in versions if v["module_version"] == "2.38.0-GCCcore-12.2.0")
    assert oldest["dependencies"] == [module("EESSI/2023.06"), module("GCCcore/12.2.0")]
    assert oldest["required_modules"] == oldest["metadata"]["required_modules"]
    assert oldest["required_modules"] == nested["required_modules"]


def test_an_extension_version_carries_its_parent_modules_version(
    client: TestClient, engine: Engine
) -> None:
    import_old_format(engine)
    ext = one(client, PACKAGES, name_exact="numpy-lite")
    version = one(client, VERSIONS, package_uuid=ext["uuid"])
    assert (version["version"], version["module_version"]) == ("1.0", "1.0.0-GCCcore-12.3.0")
    assert version["metadata"]["parent_module"] == "Tool0/1.0.0-GCCcore-12.3.0"
    assert version["module"] == module("Tool0/1.0.0-GCCcore-12.3.0")
    assert version["dependencies"] == [module("EESSI/2023.06"), module("GCCcore/12.3.0")]


def test_openapi_describes_module_objects(client: TestClient) -> None:
    schemas = client.get("/api/schema/").json()["components"]["schemas"]
    assert set(schemas["ModuleOut"]["properties"]) == {
        "full_module_name",
        "module_name",
        "module_version",
    }
    ref = {"$ref": "#/components/schemas/ModuleOut"}
    version = schemas["VersionOut"]["properties"]
    assert version["required_modules"]["items"] == ref
    assert version["module"] == ref
    # EESSI gives module objects, Spack package names: one list of either.
    assert version["dependencies"]["items"] == {"anyOf": [ref, {"type": "string"}]}
    assert schemas["NestedVersionOut"]["properties"]["required_modules"]["items"] == ref
