"""Package lists embed versions (each with its targets) and extensions, in Waldur's shape and
order (issue 25, item 1), from fragments rendered when the data is written: after an import,
an incremental refresh, a refused shrink, hand writes, a catalog's deletion; `?field=` asks
for less; a missing or outdated fragment is rendered on the fly and `syncd migrate` stores it.
Catalogs are imported and updated by the service commands from a scripted upstream; reads
go through HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, func, select, update

from syncd import readmodel
from syncd.db.tables import Package, PackageReadModel, Target, Version
from syncd.domain import PackageRecord
from syncd.readmodel import pg_render, sqlite_render, store
from syncd.sync import diff
from syncd.sync.shrink import ShrinkRefusedError
from tests.integration.api.conftest import CATALOGS, PACKAGES, VERSIONS, Sample
from tests.integration.api.test_software_writes_sync import (
    ScriptedUpstream,
    Upstream,
    cpu,
    upstream_v1,
)
from tests.support.records import package, version
from tests.support.syncd_cli import run_syncd

NESTED_VERSION_KEYS = [
    "uuid",
    "version",
    "module_version",
    "release_date",
    "targets",
    "module",
    "modulename",
    "required_modules",
    "extensions",
    "toolchain",
    "toolchain_families_compatibility",
]
NESTED_TARGET_KEYS = [
    "uuid",
    "target_type",
    "target_name",
    "target_subtype",
    "location",
    "metadata",
    "gpu_architectures",
]


def with_extension(packages: list[PackageRecord], *numpy: str) -> list[PackageRecord]:
    """`packages` plus numpy, an extension of python, in versions `numpy`."""
    extension = package(
        "numpy",
        *(version(number, cpu("amd/zen2")) for number in numpy),
        is_extension=True,
        parent_names=["python"],
    )
    return [*packages, extension]


@pytest.fixture
def upstream(engine: Engine) -> Upstream:
    found = Upstream(engine, ScriptedUpstream(with_extension(upstream_v1(), "1.26")))
    found.import_()
    return found


def listed(client: TestClient, **params: Any) -> dict[str, dict[str, Any]]:
    answer = client.get(PACKAGES, params={"page_size": 100, **params})
    assert answer.status_code == 200, answer.text
    return {item["name"]: item for item in answer.json()}


def stored(engine: Engine) -> dict[int, tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                PackageReadModel.package_id,
                PackageReadModel.format,
                PackageReadModel.extensions,
                PackageReadModel.versions,
            )
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}


def assert_all_stored_and_fresh(engine: Engine) -> None:
    """Every package has a fragment of the current FORMAT, equal to one rendered now."""
    found = stored(engine)
    with engine.connect() as conn:
        ids = list(conn.execute(select(Package.id)).scalars())
        fresh = store._render(conn, None, ids)
    assert sorted(found) == sorted(ids)
    for package_id, (fmt, extensions, versions) in found.items():
        assert fmt == readmodel.FORMAT
        assert (extensions, versions) == (fresh[package_id].extensions, fresh[package_id].versions)


def test_list_embeds_versions_targets_and_extensions_as_waldur(
    client: TestClient, engine: Engine, upstream: Upstream
) -> None:
    assert_all_stored_and_fresh(engine)  # rendered by the import, not per request
    items = listed(client)
    gcc, python = items["gcc"], items["python"]
    # Nested versions oldest first, then each version's targets newest first (created desc,
    # then id: an import creates them at one time, so in upstream's order).
    assert [v["version"] for v in gcc["versions"]] == ["12.3", "13.2"]
    assert list(gcc["versions"][1]) == NESTED_VERSION_KEYS
    targets = gcc["versions"][1]["targets"]
    assert [t["target_subtype"] for t in targets] == ["amd/zen2", "amd/zen3"]
    assert list(targets[0]) == NESTED_TARGET_KEYS
    assert targets[1]["location"] == "/up/zen3"
    assert python["versions"][1]["toolchain"] == {"name": "GCCcore"}
    assert python["extensions"] == [
        {
            "uuid": items["numpy"]["uuid"],
            "name": "numpy",
            "url": f"http://testserver{PACKAGES}{items['numpy']['uuid']}/",
            "versions": ["1.26"],
        }
    ]
    for item in items.values():  # the list's object is the retrieve's
        assert client.get(f"{PACKAGES}{item['uuid']}/").json() == item


def test_field_asks_for_less_and_skips_the_fragments(
    client: TestClient, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_versions = listed(client, field=["name", "versions"])["gcc"]
    assert list(only_versions) == ["name", "versions"]
    assert len(only_versions["versions"]) == 2

    def refuse(*_args: Any) -> None:
        raise AssertionError("fragments read for a page that does not embed them")

    monkeypatch.setattr("syncd.api.software_rendering.read_fragments", refuse)
    assert listed(client, field=["name", "version_count"])["gcc"] == {
        "name": "gcc",
        "version_count": 2,
    }


def test_refresh_renders_exactly_the_packages_it_touched(
    client: TestClient, engine: Engine, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[set[int]] = []
    real = diff.refresh_read_model

    def spy(conn: Connection, catalog_id: int, ids: Collection[int] | None, **kw: bool) -> None:
        rendered.append(set(ids) if ids is not None else set())
        real(conn, catalog_id, ids, **kw)

    monkeypatch.setattr(diff, "refresh_read_model", spy)
    before = listed(client)
    ids = {name: _package_id(engine, item["uuid"]) for name, item in before.items()}
    packages = upstream_v1()
    gcc, python, zlib = packages
    gcc.versions.insert(0, version("14.1", cpu("amd/zen4")))  # a version added (newest first)
    python.versions[0].targets.pop()  # python 3.12 loses its only target
    upstream.update(with_extension([gcc, python, zlib], "2.0", "1.26"))  # numpy gains one
    # gcc and numpy changed, python lost a target and embeds numpy's versions; zlib did not.
    assert rendered == [{ids["gcc"], ids["python"], ids["numpy"]}]
    assert_all_stored_and_fresh(engine)
    after = listed(client)
    assert [v["version"] for v in after["gcc"]["versions"]] == ["12.3", "13.2", "14.1"]
    assert after["python"]["versions"][1]["targets"] == []
    assert after["python"]["extensions"][0]["versions"] == ["1.26", "2.0"]
    assert after["zlib"] == before["zlib"]

    upstream.update(with_extension([gcc, python, zlib], "2.0", "1.26"))  # nothing changed
    assert rendered[1] == set()


def test_a_refused_shrink_keeps_the_fragments(
    client: TestClient, engine: Engine, upstream: Upstream
) -> None:
    before, fragments = listed(client), stored(engine)
    with pytest.raises(ShrinkRefusedError):
        upstream.update([package("zlib", version("1.3", cpu("amd/zen2")))])
    assert stored(engine) == fragments
    assert listed(client) == before


def test_deleting_a_catalog_deletes_its_fragments(
    client: TestClient, engine: Engine, upstream: Upstream, staff: dict[str, str]
) -> None:
    assert stored(engine)
    answer = client.delete(f"{CATALOGS}{upstream.catalog}/", headers=staff)
    assert answer.status_code == 204, answer.text
    assert stored(engine) == {}


def test_hand_writes_render_the_packages_they_change(
    client: TestClient, engine: Engine, upstream: Upstream, staff: dict[str, str]
) -> None:
    items = listed(client)
    numpy = items["numpy"]["url"]
    made = client.post(VERSIONS, json={"package": numpy, "version": "3.0"}, headers=staff)
    assert made.status_code == 201, made.text
    edited = listed(client)
    assert [v["version"] for v in edited["numpy"]["versions"]] == ["1.26", "3.0"]
    # The parent embeds its extension's versions.
    assert edited["python"]["extensions"][0]["versions"] == ["1.26", "3.0"]
    assert_all_stored_and_fresh(engine)
    target = edited["gcc"]["versions"][1]["targets"][1]["uuid"]
    patched = client.patch(
        f"/api/marketplace-software-targets/{target}/", json={"location": "/site"}, headers=staff
    )
    assert patched.status_code == 200, patched.text
    assert listed(client)["gcc"]["versions"][1]["targets"][1]["location"] == "/site"
    gone = client.delete(f"{VERSIONS}{made.json()['uuid']}/", headers=staff)
    assert gone.status_code == 204, gone.text
    assert listed(client)["python"]["extensions"][0]["versions"] == ["1.26"]
    assert_all_stored_and_fresh(engine)


def test_missing_or_old_fragments_are_rendered_on_the_fly_and_by_migrate(
    client: TestClient, engine: Engine, upstream: Upstream, db_url: str, tmp_path: Path
) -> None:
    before = listed(client)
    with engine.begin() as conn:
        conn.execute(update(PackageReadModel).values(format=readmodel.FORMAT - 1))
        conn.execute(
            PackageReadModel.__table__.delete().where(
                PackageReadModel.package_id == _package_id(engine, before["gcc"]["uuid"], conn)
            )
        )
    assert listed(client) == before  # never wrong meanwhile
    done = run_syncd(["migrate"], tmp_path, db_url)
    assert done.returncode == 0, done.stderr
    assert "package list fragments rendered: 4" in done.stdout
    assert_all_stored_and_fresh(engine)
    assert listed(client) == before
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(PackageReadModel)).scalar() == 4


def test_the_database_builds_the_objects_python_builds(
    engine: Engine, sample: Sample, db_url: str
) -> None:
    # The sample's versions carry modules, toolchains, release dates, GPU targets; one more
    # gets odd metadata (a module that is not an object, a toolchain list, a null family).
    with engine.begin() as conn:
        odd = {"module": "x", "toolchain": [], "toolchain_families_compatibility": None}
        conn.execute(update(Version).where(Version.id == 1).values(metadata_=odd))
        conn.execute(update(Target).where(Target.id == 1).values(metadata_=None))
        ids = list(conn.execute(select(Package.id)).scalars())
        python = store._versions_in_python(conn, None, ids)
        assert python and python == store._versions_in_python(conn, None, ids)
        renderer = pg_render if db_url.startswith("postgresql") else sqlite_render
        built = renderer.versions_json(conn, None, ids)
        by_catalog: dict[int, str] = {}
        for catalog_id in set(conn.execute(select(Package.catalog_id)).scalars()):
            by_catalog.update(renderer.versions_json(conn, catalog_id, ids))
    assert {k: json.loads(v) for k, v in built.items()} == {
        k: json.loads(v) for k, v in python.items()
    }
    assert by_catalog == built


def _package_id(engine: Engine, hex_uuid: str, conn: Connection | None = None) -> int:
    import uuid

    query = select(Package.id).where(Package.uuid == uuid.UUID(hex_uuid))
    if conn is not None:
        return int(conn.execute(query).scalar_one())
    with engine.connect() as own:
        return int(own.execute(query).scalar_one())
