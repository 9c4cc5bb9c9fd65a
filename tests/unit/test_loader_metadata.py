"""Loader metadata and values as Waldur's catalog loaders store them (issue 25, item 10):
what the EESSI and Spack adapters put into catalog, version and target records."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from syncd.readmodel.fragments import target_wire_metadata, version_wire_metadata
from tests.support import upstream_data
from tests.unit.test_eessi_adapter import BASE, SOFTWARE, setup
from tests.unit.test_spack_adapter import snapshot_packages


def _eessi_snapshot(doc: dict[str, Any], stack: str = "2023.06") -> Any:
    adapter, fetcher = setup({SOFTWARE: upstream_data.dumps(doc)}, eessi_extensions=False)
    snapshot = adapter.fetch_snapshot(fetcher, version=stack)
    assert snapshot is not None
    return snapshot


def _gpu_build(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for name, software in doc["software"].items():
        for entry in software["versions"]:
            if entry["gpu_arch"] and entry["required_modules"][0]["module_version"] == "2023.06":
                return name, entry
    raise AssertionError("the document has no GPU build")


def test_eessi_targets_carry_full_arch_and_the_versions_gpu_arch_map() -> None:
    doc = upstream_data.eessi_software_document()
    name, entry = _gpu_build(doc)
    packages = {p.name: p for p in _eessi_snapshot(doc).packages}
    [version] = [v for v in packages[name].versions if v.metadata["module"] == entry["module"]]
    for target in version.targets:
        assert list(target.metadata) == ["full_arch", "gpu_arch"]
        assert target.metadata["gpu_arch"] == entry["gpu_arch"]
        assert target.metadata["full_arch"].endswith(target.target_subtype)


def test_eessi_versions_carry_image_categories_and_identifier() -> None:
    doc = upstream_data.eessi_software_document()
    name, entry = _gpu_build(doc)
    entry.update(image="https://img.example/x.png", categories=["chem"], identifier="x-1")
    packages = {p.name: p for p in _eessi_snapshot(doc).packages}
    [version] = [v for v in packages[name].versions if v.metadata["module"] == entry["module"]]
    assert version.metadata["image"] == "https://img.example/x.png"
    assert version.metadata["categories"] == ["chem"]
    assert version.metadata["identifier"] == "x-1"
    other = next(v for p in packages.values() for v in p.versions if v is not version)
    assert (other.metadata["image"], other.metadata["identifier"]) == ("", "")


def test_eessi_catalog_names_its_api_base_url_and_waldurs_description() -> None:
    snapshot = _eessi_snapshot(upstream_data.eessi_software_document())
    assert snapshot.catalog.metadata["api_base_url"] == BASE.rstrip("/")
    assert snapshot.catalog.description == (
        "European Environment for Scientific Software Installations 2023.06"
    )


def test_an_empty_upstream_homepage_stays_an_empty_string() -> None:
    doc = upstream_data.eessi_software_document()
    name = next(iter(doc["software"]))
    doc["software"][name]["homepage"] = ""
    packages = {p.name: p for p in _eessi_snapshot(doc).packages}
    assert packages[name].homepage == ""
    spack = upstream_data.spack_document()
    first = next(iter(spack["packages"]))
    spack["packages"][first]["homepages"] = [""]
    found = snapshot_packages(upstream_data.dumps(spack))
    assert found[first].homepage == ""


def test_spack_versions_all_have_a_branch_and_master_has_no_location() -> None:
    doc = upstream_data.spack_document()
    name = next(iter(doc["packages"]))
    doc["packages"][name]["version"].append({"branch": "master", "version": "master"})
    found = snapshot_packages(upstream_data.dumps(doc))
    versions = {v.version: v for v in found[name].versions}
    assert versions["master"].metadata["branch"] == "master"
    assert versions["master"].targets[0].location == ""
    releases = [e["version"] for e in doc["packages"][name]["version"] if "branch" not in e]
    assert releases
    assert all(versions[str(number)].metadata["branch"] == "" for number in releases)


def _waldur_default_target_metadata(package: dict[str, Any], entry: dict[str, Any]) -> Any:
    """What Waldur's Spack loader stores as a version's default target metadata."""
    return {
        "downloads": entry.get("downloads", []),
        "dependencies": package.get("dependencies", []),
        "patches": package.get("patches", []),
        "categories": package.get("categories", []),
        "version_info": entry,
    }


def test_spack_default_targets_show_waldurs_metadata_composed_from_their_version() -> None:
    doc = upstream_data.spack_document()
    doc["packages"]["pkg-003"]["patches"] = ["fix.patch when @:1"]
    found = snapshot_packages(upstream_data.dumps(copy.deepcopy(doc)))
    compared = 0
    for name, package in found.items():
        upstream = doc["packages"][name]
        entries = {str(entry["version"]): entry for entry in upstream["version"]}
        for version in package.versions:
            default = version.targets[0]
            assert (default.target_name, default.metadata) == ("default", {})  # stored once
            row = SimpleNamespace(
                target_type=default.target_type,
                target_name=default.target_name,
                metadata_=default.metadata,
                is_local=False,
                version=version.version,
                version_metadata=version.metadata,
                version_dependencies=version.dependencies,
                version_is_local=False,
                package_categories=package.categories,
            )
            shown = target_wire_metadata(row)
            entry = entries[version.version]
            if entry.get("downloads") in ([[]],) or name == "pkg-002":
                continue  # odd download shapes: syncd keeps them flattened
            assert shown == _waldur_default_target_metadata(upstream, entry), name
            assert list(shown) == [
                "downloads",
                "dependencies",
                "patches",
                "categories",
                "version_info",
            ]
            compared += 1
            for other in version.targets[1:]:  # the category targets: as stored
                fields = {"target_type": other.target_type, "target_name": other.target_name}
                shown = target_wire_metadata(
                    SimpleNamespace(**{**vars(row), **fields, "metadata_": other.metadata})
                )
                assert shown == other.metadata
    assert compared > 10
    assert any(p["patches"] for p in doc["packages"].values())


def test_spack_versions_show_the_packages_downloads_stored_once_per_package() -> None:
    doc = upstream_data.spack_document()
    doc["packages"]["pkg-003"]["downloads"] = ["https://example.org/pkg-003.tar.gz"]
    found = snapshot_packages(upstream_data.dumps(copy.deepcopy(doc)))
    shown = 0
    for name, package in found.items():
        downloads = doc["packages"][name].get("downloads", [])
        assert package.metadata == {"downloads": downloads}
        for version in package.versions:
            assert "package_downloads" not in version.metadata  # not copied per version
            metadata = version_wire_metadata(
                "source_package",
                version.metadata,
                version.dependencies,
                package_downloads=package.metadata["downloads"],
            )
            assert list(metadata)[:6] == [
                "downloads",
                "branch",
                "dependencies",
                "patches",
                "aliases",
                "package_downloads",
            ]
            assert metadata["package_downloads"] == downloads
            shown += 1
    assert shown > 10
    assert found["pkg-003"].metadata["downloads"] == ["https://example.org/pkg-003.tar.gz"]


def test_a_hand_made_default_target_keeps_its_stored_metadata() -> None:
    row = SimpleNamespace(
        target_type="build_variant",
        target_name="default",
        metadata_={},
        is_local=True,
        version="1.0",
        version_metadata={"downloads": ["https://example.org/a.tar.gz"], "branch": ""},
        version_dependencies=["zlib"],
        version_is_local=False,
        package_categories=[],
    )
    assert target_wire_metadata(row) == {}
    row.is_local = False
    assert target_wire_metadata(row)["version_info"] == {
        "downloads": ["https://example.org/a.tar.gz"],
        "version": "1.0",
    }
    row.metadata_ = {"note": "kept"}
    assert target_wire_metadata(row) == {"note": "kept"}
