"""Hand writes through a real sync: rows made through the API stay local (a sync never
updates, deletes or counts them as upstream rows), and an edit of an upstream row lasts until
upstream changes that row. Catalogs are imported and updated by the service commands
(import_catalog, update_catalog) from a scripted upstream; the writes go through HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from syncd.domain import (
    CatalogInfo,
    CatalogSnapshot,
    CatalogType,
    PackageRecord,
    TargetRecord,
)
from syncd.service import CommandResult, import_catalog, update_catalog
from tests.integration.api.conftest import CATALOGS, PACKAGES, TARGETS, VERSIONS
from tests.support.records import package, version


def cpu(name: str, **fields: Any) -> TargetRecord:
    return TargetRecord("cpu_architecture", "x86_64", name, **fields)


def upstream_v1() -> list[PackageRecord]:
    return [
        package(
            "gcc",
            version("13.2", cpu("amd/zen2"), cpu("amd/zen3", location="/up/zen3")),
            version("12.3", cpu("amd/zen2")),
            description="GNU compilers",
        ),
        package(
            "python",
            version("3.12", cpu("amd/zen2"), metadata={"toolchain": {"name": "GCCcore"}}),
            version("3.11", cpu("amd/zen2")),
            description="Python",
        ),
        package("zlib", version("1.3", cpu("amd/zen2")), description="Compression"),
    ]


@dataclass
class ScriptedUpstream:
    """An adapter whose upstream is whatever the test put in `packages` last."""

    name: ClassVar[str] = "Handmade"
    catalog_type: ClassVar[CatalogType] = CatalogType.SOURCE_PACKAGE
    packages: list[PackageRecord] = field(default_factory=upstream_v1)

    def default_source(self) -> str:
        return "https://upstream.example/handmade"

    def discover(self, fetcher: Any, source: str | None = None) -> list[str]:
        return ["1"]

    def fetch_snapshot(self, fetcher: Any, **_kwargs: Any) -> CatalogSnapshot:
        info = CatalogInfo(name=self.name, version="1", catalog_type=self.catalog_type)
        return CatalogSnapshot(catalog=info, packages=list(self.packages), validators={})


@dataclass
class Upstream:
    engine: Engine
    adapter: ScriptedUpstream
    catalog: str = ""

    def import_(self) -> CommandResult:
        result = import_catalog(self.engine, {"Handmade": self.adapter}, None, name="Handmade")
        self.catalog = result.catalog_uuid
        return result

    def update(self, packages: list[PackageRecord]) -> CommandResult:
        self.adapter.packages = packages
        return update_catalog(
            self.engine, {"Handmade": self.adapter}, None, catalog_uuid=self.catalog
        )


@pytest.fixture
def upstream(engine: Engine) -> Upstream:
    found = Upstream(engine, ScriptedUpstream())
    found.import_()
    return found


class Api:
    """The catalog's objects by name, read and written through HTTP."""

    def __init__(self, client: TestClient, staff: dict[str, str], catalog: str) -> None:
        self.client, self.staff, self.catalog = client, staff, catalog

    def package(self, name: str) -> dict[str, Any]:
        found = self.client.get(PACKAGES, params={"name_exact": name}).json()
        assert len(found) == 1, found
        detail: dict[str, Any] = self.client.get(f"{PACKAGES}{found[0]['uuid']}/").json()
        return detail

    def version(self, package: str, number: str) -> dict[str, Any]:
        [found] = [v for v in self.package(package)["versions"] if v["version"] == number]
        detail: dict[str, Any] = self.client.get(f"{VERSIONS}{found['uuid']}/").json()
        return detail

    def target(self, package: str, number: str, subtype: str) -> dict[str, Any]:
        targets = self.version_nested(package, number)["targets"]
        [found] = [t for t in targets if t["target_subtype"] == subtype]
        detail: dict[str, Any] = self.client.get(f"{TARGETS}{found['uuid']}/").json()
        return detail

    def version_nested(self, package: str, number: str) -> dict[str, Any]:
        [found] = [v for v in self.package(package)["versions"] if v["version"] == number]
        return found

    def write(self, method: str, url: str, body: dict[str, Any], status: int) -> dict[str, Any]:
        answer = self.client.request(method, url, json=body, headers=self.staff)
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else {}

    def counts(self) -> tuple[int, int, int]:
        body = self.client.get(f"{CATALOGS}{self.catalog}/").json()
        return body["package_count"], body["version_count"], body["target_count"]

    def catalog_row(self) -> dict[str, Any]:
        row: dict[str, Any] = self.client.get(f"{CATALOGS}{self.catalog}/").json()
        return row


@pytest.fixture
def api(client: TestClient, staff: dict[str, str], upstream: Upstream) -> Api:
    return Api(client, staff, upstream.catalog)


def kinds(result: CommandResult) -> dict[str, tuple[int, int, int, int]]:
    assert result.stats is not None
    return {
        kind: (v["created"], v["updated"], v["deleted"], v["unchanged"])
        for kind, v in result.stats.as_dict().items()
        if kind != "parent_links"
    }


def make_local_rows(api: Api) -> None:
    """A local package with a version and a target, a local version of an upstream package
    and a local target of an upstream version."""
    mine = api.write(
        "POST",
        PACKAGES,
        {"catalog": f"{CATALOGS}{api.catalog}/", "name": "site-tools", "description": "Ours"},
        201,
    )
    ours = api.write("POST", VERSIONS, {"package": mine["url"], "version": "1.0"}, 201)
    api.write(
        "POST",
        TARGETS,
        {"version": ours["url"], "target_type": "cpu_architecture", "target_name": "x86_64"},
        201,
    )
    python = api.package("python")["url"]
    api.write("POST", VERSIONS, {"package": python, "version": "3.13"}, 201)
    gcc = api.version("gcc", "13.2")["url"]
    body = {"version": gcc, "target_type": "cpu_architecture", "target_name": "aarch64"}
    api.write("POST", TARGETS, {**body, "target_subtype": "a64fx", "location": "/site"}, 201)


def test_local_rows_survive_an_update_that_does_not_hold_them(api: Api, upstream: Upstream) -> None:
    make_local_rows(api)
    dropped = upstream_v1()
    dropped[0] = package(
        "gcc",
        version("13.2", cpu("amd/zen2"), cpu("amd/zen3", location="/up/zen3")),
        version("12.3", cpu("amd/zen2")),
        description="GNU Compiler Collection",
    )
    del dropped[2]  # zlib: upstream dropped it, and the sync deletes it
    result = upstream.update(dropped)
    # Local rows are neither deleted nor counted as upstream rows.
    assert kinds(result) == {
        "packages": (0, 1, 1, 1),
        "versions": (0, 0, 1, 4),
        "targets": (0, 0, 1, 5),
    }
    mine = api.package("site-tools")
    assert (mine["is_local"], mine["description"], mine["version_count"]) == (True, "Ours", 1)
    assert [t["target_name"] for t in mine["versions"][0]["targets"]] == ["x86_64"]
    python = api.package("python")
    # Waldur lists nested versions oldest first.
    assert [v["version"] for v in python["versions"]] == ["3.11", "3.12", "3.13"]
    assert python["version_count"] == 3
    assert api.version("python", "3.13")["is_local"] is True
    a64fx = api.target("gcc", "13.2", "a64fx")
    assert (a64fx["is_local"], a64fx["location"]) == (True, "/site")
    assert api.package("gcc")["description"] == "GNU Compiler Collection"
    assert api.client.get(PACKAGES, params={"name_exact": "zlib"}).json() == []
    # The stored counts (X-Result-Count of the unfiltered lists) hold upstream and local rows.
    assert api.counts() == (3, 6, 7)
    for collection, expected in ((PACKAGES, 3), (VERSIONS, 6), (TARGETS, 7)):
        listed = api.client.get(collection, params={"page_size": 100})
        assert int(listed.headers["X-Result-Count"]) == len(listed.json()) == expected
    # A second update of the same data writes nothing, local rows or not.
    again = upstream.update(dropped)
    assert kinds(again) == {
        "packages": (0, 0, 0, 2),
        "versions": (0, 0, 0, 4),
        "targets": (0, 0, 0, 5),
    }
    assert api.counts() == (3, 6, 7)


def test_hand_edits_last_until_upstream_changes_the_row(api: Api, upstream: Upstream) -> None:
    gcc = api.package("gcc")["url"]
    api.write("PATCH", gcc, {"description": "Edited by staff"}, 200)
    api.write(
        "PATCH", api.package("python")["url"], {"homepage": "https://python.example.org/site"}, 200
    )
    python_312 = api.version("python", "3.12")["url"]
    api.write("PATCH", python_312, {"metadata": {"note": "edited"}}, 200)
    zen3 = api.target("gcc", "13.2", "amd/zen3")["url"]
    api.write("PATCH", zen3, {"location": "/site/zen3"}, 200)

    # Upstream changes other rows: zlib's description, and a newer python version, which
    # moves python 3.12 down one place and changes python's version count.
    others = upstream_v1()
    others[1].versions.insert(0, version("3.13", cpu("amd/zen2")))
    others[2] = package("zlib", version("1.3", cpu("amd/zen2")), description="Compression!")
    upstream.update(others)
    assert api.package("gcc")["description"] == "Edited by staff"
    edited = api.version("python", "3.12")
    assert edited["metadata"] == {"note": "edited"}
    python = api.package("python")
    assert (python["homepage"], python["version_count"]) == ("https://python.example.org/site", 3)
    # Waldur lists nested versions oldest first.
    assert [v["version"] for v in python["versions"]] == ["3.11", "3.12", "3.13"]
    assert api.target("gcc", "13.2", "amd/zen3")["location"] == "/site/zen3"
    assert api.package("zlib")["description"] == "Compression!"

    # Upstream changes the edited rows themselves: upstream's values replace the edits.
    changed = upstream_v1()
    changed[0] = package(
        "gcc",
        version("13.2", cpu("amd/zen2"), cpu("amd/zen3", location="/up/zen3-new")),
        version("12.3", cpu("amd/zen2")),
        description="GNU Compiler Collection",
    )
    changed[1] = package(
        "python",
        version("3.12", cpu("amd/zen2"), metadata={"toolchain": {"name": "GCC"}}),
        version("3.11", cpu("amd/zen2")),
        description="Python",
    )
    upstream.update(changed)
    assert api.package("gcc")["description"] == "GNU Compiler Collection"
    assert (
        api.package("python")["homepage"] == "https://python.example.org/site"
    )  # python's own: as was
    assert api.version("python", "3.12")["metadata"] == {"toolchain": {"name": "GCC"}}
    assert api.target("gcc", "13.2", "amd/zen3")["location"] == "/up/zen3-new"


def test_a_local_row_keeps_its_key_when_upstream_brings_the_same(
    api: Api, upstream: Upstream
) -> None:
    make_local_rows(api)
    twins = upstream_v1()
    twins.append(package("site-tools", version("2.0", cpu("generic")), description="Theirs"))
    twins[1].versions.insert(0, version("3.13", cpu("amd/zen4")))
    twins[0].versions[0].targets.append(
        TargetRecord("cpu_architecture", "aarch64", "a64fx", location="/upstream")
    )
    result = upstream.update(twins)
    mine = api.package("site-tools")
    assert (mine["is_local"], mine["description"]) == (True, "Ours")
    assert [v["version"] for v in mine["versions"]] == ["1.0"]
    local_313 = api.version_nested("python", "3.13")
    assert local_313["targets"] == []  # upstream's 3.13 (and its zen4 target) stayed out
    assert api.version("python", "3.13")["is_local"] is True
    assert api.target("gcc", "13.2", "a64fx")["location"] == "/site"
    errors = api.catalog_row()["update_errors"]
    assert "3 upstream records were left out: " in errors
    assert "package 'site-tools': a package of that name made through the API is kept" in errors
    assert "package 'python' version '3.13': a version made through the API is kept" in errors
    assert "target ('cpu_architecture', 'aarch64', 'a64fx')" in errors
    assert result.stats is not None and result.stats.skipped == 3
    assert api.counts() == (4, 7, 8)

    # Deleting the local package lets upstream's in at the next update.
    api.write("DELETE", mine["url"], {}, 204)
    upstream.update(twins)
    theirs = api.package("site-tools")
    assert (theirs["is_local"], theirs["description"]) == (False, "Theirs")
    assert [v["version"] for v in theirs["versions"]] == ["2.0"]
    assert api.counts() == (4, 7, 8)


def test_an_upstream_row_that_holds_local_rows_is_kept_as_local(
    api: Api, upstream: Upstream
) -> None:
    gcc_123 = api.version("gcc", "12.3")["url"]
    body = {"version": gcc_123, "target_type": "cpu_architecture", "target_name": "riscv64"}
    api.write("POST", TARGETS, body, 201)
    # A hand-deleted upstream row comes back with the next update (upstream still has it).
    api.write("DELETE", api.package("zlib")["url"], {}, 204)
    assert api.counts() == (2, 4, 6)

    without_123 = upstream_v1()
    del without_123[0].versions[1]
    upstream.update(without_123)
    kept = api.version("gcc", "12.3")
    assert kept["is_local"] is True
    assert [t["target_name"] for t in api.version_nested("gcc", "12.3")["targets"]] == ["riscv64"]
    assert api.package("gcc")["version_count"] == 2
    zlib = api.package("zlib")
    assert (zlib["is_local"], zlib["description"]) == (False, "Compression")
    assert api.counts() == (3, 5, 6)


def test_hand_deleted_upstream_versions_and_targets_come_back_at_the_next_update(
    api: Api, upstream: Upstream
) -> None:
    """Upstream is unchanged, so every package's versions hash is as stored: the hand write
    must make the next update look at its package's versions again (versions_hash.forget)."""
    upstream.update(upstream_v1())  # the stored hashes are the upstream's
    api.write("DELETE", api.version("python", "3.11")["url"], {}, 204)
    api.write("DELETE", api.target("gcc", "13.2", "amd/zen3")["url"], {}, 204)
    assert api.counts() == (3, 4, 4)

    result = upstream.update(upstream_v1())
    assert kinds(result)["versions"] == (1, 0, 0, 4)
    assert kinds(result)["targets"] == (2, 0, 0, 4)  # zen3, and 3.11's own
    assert [v["version"] for v in api.package("python")["versions"]] == ["3.11", "3.12"]
    assert api.target("gcc", "13.2", "amd/zen3")["location"] == "/up/zen3"
    assert api.counts() == (3, 5, 6)
    assert kinds(upstream.update(upstream_v1()))["targets"] == (0, 0, 0, 6)


def test_twins_of_local_rows_are_named_at_every_update(api: Api, upstream: Upstream) -> None:
    """Packages holding local rows are staged in full at every update (their versions hash
    is not kept), so the records left out for them are named every time."""
    make_local_rows(api)
    twins = upstream_v1()
    twins[1].versions.insert(0, version("3.13", cpu("amd/zen4")))
    first = upstream.update(twins)
    again = upstream.update(twins)
    assert first.stats is not None and again.stats is not None
    assert first.stats.skipped == again.stats.skipped == 1
    assert "package 'python' version '3.13'" in api.catalog_row()["update_errors"]
    assert again.stats.rows_written == 0
