"""EESSI files of both schema epochs (before and since early 2026) give the same records, every
toolchain build keeps its own version, and modules are Waldur's objects."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.domain import PackageRecord
from tests.support import upstream_data
from tests.support.eessi_old_format import documents, snapshot, to_old_format

EPOCHS = pytest.mark.parametrize("old", [False, True], ids=["2026", "pre-2026"])
ATK_TOOLCHAINS = upstream_data.ATK_TOOLCHAINS


def module(full: str) -> dict[str, str]:
    name, _, version = full.partition("/")
    return {"full_module_name": full, "module_name": name, "module_version": version}


@pytest.fixture
def software_doc() -> dict[str, Any]:
    """The synthetic stacks plus ATK: one upstream version, three GCCcore builds in 2023.06."""
    return upstream_data.eessi_document_with_atk()


def packages_of(doc: dict[str, Any], stack: str, *, old: bool) -> dict[str, PackageRecord]:
    return {p.name: p for p in snapshot(documents(doc, old=old), stack).packages}


def summary(packages: dict[str, PackageRecord]) -> dict[str, Any]:
    """Everything of the records that both epochs carry (older files list no extensions in
    a software entry, so metadata["extensions"] is left out)."""
    out: dict[str, Any] = {}
    for name, p in packages.items():
        versions = [
            (
                v.key,
                v.dependencies,
                {k: x for k, x in v.metadata.items() if k != "extensions"},
                [(t.key, t.location, t.gpu_architectures, t.metadata) for t in v.targets],
            )
            for v in p.versions
        ]
        out[name] = (p.is_extension, p.parent_names, p.description, p.licenses, versions)
    return out


def test_the_old_format_is_what_the_brief_describes(software_doc: dict[str, Any]) -> None:
    old = to_old_format(software_doc)
    entry = old["software"]["ATK"]["versions"][0]
    assert "module" not in entry and "extensions" not in entry
    assert entry["modulename"] == "ATK/2.38.0-GCCcore-12.2.0"
    assert entry["required_modules"] == [
        "EESSI/2023.06",
        "GCCcore/12.2.0",
        "ATK/2.38.0-GCCcore-12.2.0",
    ]
    assert "module" in software_doc["software"]["ATK"]["versions"][0]  # input left as is


@EPOCHS
def test_each_toolchain_build_keeps_its_own_version(
    software_doc: dict[str, Any], old: bool
) -> None:
    atk = packages_of(software_doc, "2023.06", old=old)["ATK"]
    assert [v.key for v in atk.versions] == [
        ("2.38.0", f"2.38.0-GCCcore-{tc}") for tc in reversed(ATK_TOOLCHAINS)
    ]
    for v, tc in zip(atk.versions, reversed(ATK_TOOLCHAINS), strict=True):
        own = module(f"ATK/2.38.0-GCCcore-{tc}")
        assert v.metadata["module"] == own
        assert v.metadata["required_modules"] == [
            module("EESSI/2023.06"),
            module(f"GCCcore/{tc}"),
            own,
        ]
        # The package's own module is never among its dependencies.
        assert v.dependencies == [module("EESSI/2023.06"), module(f"GCCcore/{tc}")]


@pytest.mark.parametrize("stack", upstream_data.EESSI_STACKS)
def test_both_epochs_give_the_same_records(software_doc: dict[str, Any], stack: str) -> None:
    new = packages_of(software_doc, stack, old=False)
    old = packages_of(software_doc, stack, old=True)
    assert summary(old) == summary(new)
    assert any(p.is_extension for p in new.values())  # extensions compared as well


@EPOCHS
def test_an_extension_version_is_keyed_by_its_parent_modules_version(
    software_doc: dict[str, Any], old: bool
) -> None:
    packages = packages_of(software_doc, "2023.06", old=old)
    version = packages["numpy-lite"].versions[0]
    assert version.key == ("1.0", "1.0.0-GCCcore-12.3.0")
    assert version.metadata["parent_module"] == "Tool0/1.0.0-GCCcore-12.3.0"
    assert version.metadata["module"] == module("Tool0/1.0.0-GCCcore-12.3.0")
    assert version.metadata["parent_software"]["name"] == "Tool0"
    assert module("Tool0/1.0.0-GCCcore-12.3.0") not in version.dependencies


@EPOCHS
def test_a_module_listing_itself_as_an_extension_is_one_build(
    software_doc: dict[str, Any], old: bool
) -> None:
    # hatchling/1.18.0-GCCcore-12.3.0 lists the Python package hatchling 1.18.0: the extension
    # file's entry and the software entry are the same build, so one version row.
    for entry in software_doc["software"]["ATK"]["versions"]:
        entry["extensions"] = [{"type": "python", "name": "ATK", "version": "2.38.0"}]
    atk = packages_of(software_doc, "2023.06", old=old)["ATK"]
    assert len(atk.versions) == len(ATK_TOOLCHAINS)
    assert not atk.is_extension and "extension_type" not in atk.versions[0].metadata


@EPOCHS
def test_two_builds_under_one_key_both_reach_the_sync(old: bool) -> None:
    # textual 0.61.0 ships in AITW-microstructures/1.0.0-foss-2023a and in
    # AITW-viscosity/1.0.0-foss-2023a: one key, two builds. The adapter passes both on, in
    # upstream order, so that the sync keeps the first and counts and logs the other.
    doc = upstream_data.eessi_one_key_two_builds_document()
    textual = packages_of(doc, "2023.06", old=old)["textual"]
    assert [v.key for v in textual.versions] == [("0.61.0", "1.0.0-GCCcore-12.3.0")] * 2
    assert [v.metadata["parent_module"] for v in textual.versions] == [
        "ParentA/1.0.0-GCCcore-12.3.0",
        "ParentB/1.0.0-GCCcore-12.3.0",
    ]
