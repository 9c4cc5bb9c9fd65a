"""Loader values as Waldur's loaders store them, read through HTTP after a real sync on both
backends (issue 25, item 10): Spack versions' metadata keys, a branch version's target
without location, an empty homepage kept as "".
"""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from adapters.spack import package_record
from syncd.db.tables import Package
from syncd.domain import PackageRecord
from syncd.readmodel import pg_render, sqlite_render, store
from tests.integration.api.conftest import PACKAGES, TARGETS, VERSIONS
from tests.integration.api.test_software_writes_sync import ScriptedUpstream, Upstream
from tests.support import upstream_data

SPACK_PACKAGE = {
    "name": "zlib-ng",
    "summary": "zlib for the next generation",
    "homepages": [""],
    "categories": ["build-tools"],
    "dependencies": ["cmake", "gmake"],
    "patches": ["fix.patch"],
    "alias": [],
    "downloads": ["https://example.org/zlib-ng.tar.gz"],
    "version": [
        {"downloads": ["https://example.org/zlib-ng-2.2.tar.gz"], "version": "2.2"},
        {"branch": "master", "version": "master"},
    ],
}


def spack_records() -> list[PackageRecord]:
    record = package_record("zlib-ng", copy.deepcopy(SPACK_PACKAGE))
    assert record is not None
    return [record]


def test_spack_values_read_as_waldur_stores_them(client: TestClient, engine: Engine) -> None:
    upstream = Upstream(engine, ScriptedUpstream(spack_records()))
    upstream.import_()
    [package] = client.get(PACKAGES).json()
    assert package["homepage"] == ""  # upstream's empty string, not null
    versions: dict[str, Any] = {
        v["version"]: v for v in client.get(VERSIONS, params={"page_size": 50}).json()
    }
    release = versions["2.2"]["metadata"]
    assert list(release)[:6] == [
        "downloads",
        "branch",
        "dependencies",
        "patches",
        "aliases",
        "package_downloads",
    ]
    assert release["branch"] == "" and release["dependencies"] == ["cmake", "gmake"]
    assert (release["patches"], release["aliases"]) == (["fix.patch"], [])
    assert release["package_downloads"] == SPACK_PACKAGE["downloads"]
    master = versions["master"]["metadata"]
    assert master["branch"] == "master" and master["downloads"] == []
    assert master["package_downloads"] == SPACK_PACKAGE["downloads"]
    retrieved = client.get(f"{VERSIONS}{versions['master']['uuid']}/").json()
    assert retrieved["metadata"] == master
    nested = {v["version"]: v for v in package["versions"]}
    default = [t for t in nested["master"]["targets"] if t["target_name"] == "default"]
    assert [t["location"] for t in default] == [""]  # no download: no location


def test_a_resync_shows_the_packages_new_downloads_on_every_version(
    client: TestClient, engine: Engine
) -> None:
    upstream = Upstream(engine, ScriptedUpstream(spack_records()))
    upstream.import_()
    changed = copy.deepcopy(SPACK_PACKAGE)
    changed["downloads"] = ["https://mirror.example.org/zlib-ng.tar.gz"]
    record = package_record("zlib-ng", changed)
    assert record is not None
    upstream.update([record])
    versions = client.get(VERSIONS, params={"page_size": 50}).json()
    assert sorted(v["version"] for v in versions) == ["2.2", "master"]
    for version in versions:
        assert version["metadata"]["package_downloads"] == changed["downloads"]
    with engine.connect() as conn:
        stored = conn.execute(select(Package.metadata_)).scalar_one()
    assert stored == {"downloads": changed["downloads"]}  # once, on the package


def test_spack_default_targets_read_with_waldurs_metadata(
    client: TestClient, engine: Engine
) -> None:
    upstream = Upstream(engine, ScriptedUpstream(spack_records()))
    upstream.import_()
    package = SPACK_PACKAGE
    expected = {
        entry["version"]: {
            "downloads": entry.get("downloads", []),
            "dependencies": package["dependencies"],
            "patches": package["patches"],
            "categories": package["categories"],
            "version_info": entry,
        }
        for entry in package["version"]
    }
    targets = client.get(TARGETS, params={"page_size": 50}).json()
    versions = {v["uuid"]: v["version"] for v in client.get(VERSIONS).json()}
    listed = {
        versions[t["version_uuid"]]: t["metadata"] for t in targets if t["target_name"] == "default"
    }
    assert listed == expected
    assert all(list(m) == list(expected["2.2"]) for m in listed.values())  # Waldur's key order
    tool = [t["metadata"] for t in targets if t["target_name"] == "build-tool"]
    assert tool == [{"category": "build-tools"}] * 2  # other targets as stored
    default = next(t for t in targets if t["target_name"] == "default")
    retrieved = client.get(f"{TARGETS}{default['url'].rsplit('/', 2)[1]}/").json()
    assert retrieved["metadata"] == default["metadata"]
    [listed_package] = client.get(PACKAGES).json()
    nested = {
        v["version"]: t["metadata"]
        for v in listed_package["versions"]
        for t in v["targets"]
        if t["target_name"] == "default"
    }
    assert nested == expected
    detail = client.get(f"{PACKAGES}{listed_package['uuid']}/").json()
    assert detail["versions"] == listed_package["versions"]


def test_the_database_composes_default_targets_as_python_does(engine: Engine, db_url: str) -> None:
    # Synthetic packages with branch versions (repositories), odd download shapes and the
    # three category targets, plus one with patches.
    doc = upstream_data.spack_document()
    records = [package_record(k, p) for k, p in doc["packages"].items()] + spack_records()
    Upstream(engine, ScriptedUpstream([r for r in records if r is not None])).import_()
    renderer = pg_render if db_url.startswith("postgresql") else sqlite_render
    with engine.connect() as conn:
        ids = list(conn.execute(select(Package.id)).scalars())
        python = store._versions_in_python(conn, None, ids)
        built = renderer.versions_json(conn, None, ids)
    assert len(python) == len(ids) > 10
    assert {k: json.loads(v) for k, v in built.items()} == {
        k: json.loads(v) for k, v in python.items()
    }
    shown = [t["metadata"] for v in json.loads(built[ids[0]]) for t in v["targets"]]
    assert any("version_info" in m for m in shown)
