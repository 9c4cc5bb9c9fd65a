"""Loader values as Waldur's loaders store them, read through HTTP after a real sync on both
backends (issue 25, item 10): Spack versions' metadata keys, a branch version's target
without location, an empty homepage kept as "".
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.spack import package_record
from syncd.domain import PackageRecord
from tests.integration.api.conftest import PACKAGES, VERSIONS
from tests.integration.api.test_software_writes_sync import ScriptedUpstream, Upstream

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
    assert list(release)[:5] == ["downloads", "branch", "dependencies", "patches", "aliases"]
    assert release["branch"] == "" and release["dependencies"] == ["cmake", "gmake"]
    assert (release["patches"], release["aliases"]) == (["fix.patch"], [])
    master = versions["master"]["metadata"]
    assert master["branch"] == "master" and master["downloads"] == []
    retrieved = client.get(f"{VERSIONS}{versions['master']['uuid']}/").json()
    assert retrieved["metadata"] == master
    nested = {v["version"]: v for v in package["versions"]}
    default = [t for t in nested["master"]["targets"] if t["target_name"] == "default"]
    assert [t["location"] for t in default] == [""]  # no download: no location
