"""EessiAdapter on small synthetic EESSI API documents (in-process transport)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import adapters.eessi.adapter as eessi_module
from adapters.eessi import (
    EessiAdapter,
    eessi_module_version,
    source_files,
    split_cpu_arch,
    stack_resolver,
)
from adapters.fetch import Fetcher
from syncd.config import Settings
from syncd.domain import CatalogType, PackageRecord
from syncd.errors import UpstreamError, VersionNotOfferedError
from tests.support import upstream_data
from tests.support.fake_upstream import static_transport

BASE = "https://upstream.test/eessi/"
SOFTWARE = "/eessi/eessi_api_metadata_software.json"
PYTHON_EXT = "/eessi/eessi_api_metadata_ext-python.json"
SETTINGS = Settings(eessi_source=BASE, allow_private_sources=True, fetch_retries=0)


@pytest.fixture
def software_doc() -> dict[str, Any]:
    return upstream_data.eessi_software_document()


@pytest.fixture
def files(software_doc: dict[str, Any]) -> dict[str, bytes]:
    return {
        SOFTWARE: upstream_data.dumps(software_doc),
        PYTHON_EXT: upstream_data.dumps(
            upstream_data.eessi_extension_document(software_doc, "python")
        ),
    }


def setup(
    files: dict[str, bytes], requests: list[httpx.Request] | None = None, **overrides: Any
) -> tuple[EessiAdapter, Fetcher]:
    settings = dataclasses.replace(SETTINGS, **overrides)
    return EessiAdapter(settings), Fetcher(settings, transport=static_transport(files, requests))


def packages_of(
    files: dict[str, bytes], version: str, **overrides: Any
) -> dict[str, PackageRecord]:
    adapter, fetcher = setup(files, **overrides)
    snapshot = adapter.fetch_snapshot(fetcher, version=version)
    assert snapshot is not None
    return {p.name: p for p in snapshot.packages}


def test_discover_lists_stacks_latest_first(files: dict[str, bytes]) -> None:
    adapter, fetcher = setup(files)
    assert adapter.discover(fetcher) == ["2025.06", "2023.06"]


def test_one_catalog_per_stack_with_the_documents_counts(
    files: dict[str, bytes], software_doc: dict[str, Any]
) -> None:
    adapter, fetcher = setup(files, eessi_extensions=False)
    for stack, (n_packages, n_versions) in upstream_data.eessi_counts(software_doc).items():
        snapshot = adapter.fetch_snapshot(fetcher, version=stack)
        assert snapshot is not None
        assert isinstance(snapshot.packages, Iterator)
        assert snapshot.catalog.version == stack
        assert snapshot.catalog.catalog_type is CatalogType.BINARY_RUNTIME
        assert snapshot.catalog.metadata["architectures_map"] == software_doc["architectures_map"]
        packages = list(snapshot.packages)
        assert len(packages) == n_packages
        assert sum(len(p.versions) for p in packages) == n_versions
        for p in packages:
            assert {v.metadata["eessi_version"] for v in p.versions} == {stack}


def test_latest_stack_is_the_default(files: dict[str, bytes]) -> None:
    adapter, fetcher = setup(files)
    snapshot = adapter.fetch_snapshot(fetcher)
    assert snapshot is not None and snapshot.catalog.version == "2025.06"


def test_cuda_and_toolchain_builds_stay_separate(files: dict[str, bytes]) -> None:
    tool1 = packages_of(files, "2023.06", eessi_extensions=False)["Tool1"]
    keys = {v.key for v in tool1.versions}
    assert ("2.0.0", "2.0.0-GCCcore-12.3.0") in keys
    assert ("2.0.0", "2.0.0-GCCcore-12.3.0-CUDA-12.1.1") in keys
    assert ("2.1.0", "2.1.0-foss-2023b") in keys
    assert tool1.versions[0].version == "2.1.0"  # newest first
    cuda = next(v for v in tool1.versions if v.metadata["versionsuffix"])
    assert cuda.metadata["toolchain"] == {"name": "GCCcore", "version": "12.3.0"}
    assert cuda.metadata["module"]["full_module_name"] == "Tool1/2.0.0-GCCcore-12.3.0-CUDA-12.1.1"
    eessi = {
        "full_module_name": "EESSI/2023.06",
        "module_name": "EESSI",
        "module_version": "2023.06",
    }
    gcccore = {
        "full_module_name": "GCCcore/12.3.0",
        "module_name": "GCCcore",
        "module_version": "12.3.0",
    }
    assert cuda.metadata["required_modules"][0] == eessi
    # Objects as Waldur stores them; the version's own module is not its own dependency.
    assert cuda.dependencies == [eessi, gcccore]


def test_targets_per_cpu_arch_with_gpu_per_cpu_target(files: dict[str, bytes]) -> None:
    tool1 = packages_of(files, "2023.06", eessi_extensions=False)["Tool1"]
    cuda = next(v for v in tool1.versions if v.metadata["versionsuffix"])
    by_arch = {t.metadata["full_arch"]: t for t in cuda.targets}
    assert list(by_arch) == list(upstream_data.CPU_TARGETS)
    zen4 = by_arch["x86_64/amd/zen4"]
    assert (zen4.target_type, zen4.target_name, zen4.target_subtype) == (
        "cpu_architecture",
        "x86_64",
        "amd/zen4",
    )
    assert (
        zen4.location == "/cvmfs/software.eessi.io/versions/2023.06/software/linux/x86_64/amd/zen4"
    )
    assert zen4.gpu_architectures == []  # gpu_arch lists only the first three CPU targets
    assert by_arch["x86_64/generic"].target_subtype == "generic"
    assert by_arch["x86_64/generic"].gpu_architectures == list(upstream_data.GPU_TARGETS)


def test_licenses_from_the_license_key(files: dict[str, bytes]) -> None:
    packages = packages_of(files, "2023.06", eessi_extensions=False)
    assert packages["Tool1"].licenses == ["GPL-3.0-only"]  # software level
    assert packages["Tool0"].licenses == ["MIT"]  # from the versions when the software has none


def test_string_required_modules_are_understood(files: dict[str, bytes]) -> None:
    tool2 = packages_of(files, "2025.06", eessi_extensions=False)["Tool2"]
    assert len(tool2.versions) == 3
    # Strings ("EESSI/2025.06") become the objects newer files give, split at the first "/".
    assert tool2.versions[0].metadata["required_modules"][0] == {
        "full_module_name": "EESSI/2025.06",
        "module_name": "EESSI",
        "module_version": "2025.06",
    }
    assert all(isinstance(d, dict) for v in tool2.versions for d in v.dependencies)


def test_extensions_are_packages_linked_to_their_parents(files: dict[str, bytes]) -> None:
    packages = packages_of(files, "2023.06")
    ext = packages["numpy-lite"]
    assert ext.is_extension and ext.parent_names == ["Tool0"]
    # module_version is the parent module's version part; its full name is parent_module.
    assert [v.key for v in ext.versions] == [("1.0", "1.0.0-GCCcore-12.3.0")]
    version = ext.versions[0]
    assert version.metadata["parent_module"] == "Tool0/1.0.0-GCCcore-12.3.0"
    assert version.metadata["extension_type"] == "python"
    assert version.metadata["parent_software"]["name"] == "Tool0"
    assert len(version.targets) == len(upstream_data.CPU_TARGETS)
    # An extension named like a software package joins it; the package stays a software.
    tool1 = packages["Tool1"]
    assert not tool1.is_extension and tool1.parent_names == ["Tool0"]
    assert ("9.9", "1.0.0-GCCcore-12.3.0") in {v.key for v in tool1.versions}
    assert len(packages) == len(set(packages))


def test_extension_files_are_optional_and_can_be_disabled(files: dict[str, bytes]) -> None:
    requests: list[httpx.Request] = []
    adapter, fetcher = setup(files, requests, eessi_extensions=False)
    snapshot = adapter.fetch_snapshot(fetcher, version="2023.06")
    assert snapshot is not None and len(requests) == 1
    assert not any(p.is_extension for p in snapshot.packages)

    requests.clear()
    del files[PYTHON_EXT]
    adapter, fetcher = setup(files, requests)
    snapshot = adapter.fetch_snapshot(fetcher, version="2023.06")
    assert snapshot is not None and len(requests) == 7  # software + six extension files
    assert not any(p.is_extension for p in snapshot.packages)
    assert snapshot.validators[BASE + "eessi_api_metadata_ext-r.json"] == {"absent": True}


def test_unknown_stack_is_a_permanent_error_naming_the_offered_ones(
    files: dict[str, bytes],
) -> None:
    adapter, fetcher = setup(files)
    with pytest.raises(VersionNotOfferedError) as caught:
        adapter.fetch_snapshot(fetcher, version="2099.01")
    assert not caught.value.transient
    assert "2099.01" in caught.value.message and "2025.06, 2023.06" in caught.value.message


def test_unchanged_upstream_is_neither_downloaded_nor_parsed(
    files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter, fetcher = setup(files)
    first = adapter.fetch_snapshot(fetcher, version="2023.06")
    assert first is not None
    list(first.packages)

    def must_not_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed an unchanged upstream")

    with monkeypatch.context() as patch:
        patch.setattr(eessi_module, "read_header", must_not_parse)
        patch.setattr(eessi_module, "iter_stack_packages", must_not_parse)
        before = fetcher.bytes_downloaded
        assert (
            adapter.fetch_snapshot(fetcher, version="2023.06", validators=first.validators) is None
        )
        assert fetcher.bytes_downloaded == before


def test_one_changed_file_rebuilds_from_every_file(
    files: dict[str, bytes], software_doc: dict[str, Any]
) -> None:
    requests: list[httpx.Request] = []
    adapter, fetcher = setup(files, requests)
    first = adapter.fetch_snapshot(fetcher, version="2023.06")
    assert first is not None
    list(first.packages)
    ext_doc = upstream_data.eessi_extension_document(software_doc, "python")
    ext_doc["software"]["numpy-lite"]["description"] = "changed"
    files[PYTHON_EXT] = upstream_data.dumps(ext_doc)
    requests.clear()
    second = adapter.fetch_snapshot(fetcher, version="2023.06", validators=first.validators)
    assert second is not None
    packages = {p.name: p for p in second.packages}
    assert packages["numpy-lite"].description == "changed"
    assert "Tool0" in packages  # the unchanged software file was fetched again in full
    software_requests = [r for r in requests if r.url.path == SOFTWARE]
    assert [("if-none-match" in r.headers) for r in software_requests] == [True, False]


def test_broken_extension_file_fails_before_any_record(files: dict[str, bytes]) -> None:
    files[PYTHON_EXT] = files[PYTHON_EXT][:100]
    adapter, fetcher = setup(files)
    with pytest.raises(UpstreamError) as caught:
        adapter.fetch_snapshot(fetcher, version="2023.06")
    assert not caught.value.transient and "not valid JSON" in caught.value.message


def test_wrong_schema_is_permanent() -> None:
    adapter, fetcher = setup({SOFTWARE: b'{"software": ["not", "a", "map"]}'})
    with pytest.raises(UpstreamError) as caught:
        adapter.fetch_snapshot(fetcher)
    assert not caught.value.transient and "no 'software' object" in caught.value.message


def test_schema_helpers() -> None:
    assert split_cpu_arch("x86_64/intel/sapphirerapids") == ("x86_64", "intel/sapphirerapids")
    assert split_cpu_arch("riscv64") == ("riscv64", "generic")
    assert eessi_module_version({"required_modules": ["GCCcore/1", "EESSI/2023.06"]}) == "2023.06"
    assert (
        eessi_module_version(
            {"required_modules": [{"module_name": "EESSI", "module_version": "2025.06"}]}
        )
        == "2025.06"
    )
    assert eessi_module_version({}) is None
    resolve = stack_resolver(["2025.06-001"])
    assert resolve["2025.06"] == "2025.06-001" and resolve["2023.06"] == "2023.06"
    software, ext = source_files("https://x.test/data/eessi_api_metadata-riscv_software.json", True)
    assert software.endswith("-riscv_software.json")
    assert ext["python"] == "https://x.test/data/eessi_api_metadata-riscv_ext-python.json"
    software, ext = source_files("file:///mirror/eessi", False)
    assert software == "file:///mirror/eessi/eessi_api_metadata_software.json" and ext == {}


def test_a_stack_without_software_is_refused_at_the_end_of_the_stream(
    software_doc: dict[str, Any],
) -> None:
    software_doc["architectures_map"]["2026.06"] = {"x86_64/generic": "x86_64/generic"}
    adapter, fetcher = setup({SOFTWARE: upstream_data.dumps(software_doc)})
    snapshot = adapter.fetch_snapshot(fetcher, version="2026.06")
    assert snapshot is not None
    with pytest.raises(UpstreamError) as caught:
        list(snapshot.packages)
    assert not caught.value.transient and "no software for EESSI 2026.06" in caught.value.message


def test_numeric_versions_keep_their_text_and_null_ones_are_named(
    software_doc: dict[str, Any],
) -> None:
    entries = software_doc["software"]["Tool2"]["versions"]
    stack_entries = [e for e in entries if "EESSI/2023.06" in e["required_modules"]]
    stack_entries[0]["version"] = "__A__"
    stack_entries[1]["version"] = None
    del stack_entries[2]["version"]
    text = upstream_data.dumps(software_doc).decode().replace('"__A__"', "2.10")
    tool2 = packages_of({SOFTWARE: text.encode()}, "2023.06", eessi_extensions=False)["Tool2"]
    assert [v.version for v in tool2.versions] == ["2.10"]
    assert all(v.version != "None" for v in tool2.versions)
    assert tool2.left_out == [
        "Tool2/3.1.0-foss-2023b: version null upstream is not a version",
        "Tool2/3.2.0-GCCcore-12.3.0: no version upstream",
    ]


def test_an_extension_file_is_read_twice_per_snapshot(
    files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: an extension file's names are scanned once (the check before any record,
    which the stream then uses), and its entries once; the software file is read by the
    header (top level, then its stacks) and by the stream. Three reads of each before."""
    from adapters.fetch.results import FetchResult

    opened: list[str] = []
    real_open = FetchResult.open

    def counted(self: FetchResult) -> Any:
        opened.append(self.url.rsplit("/", 1)[1])
        return real_open(self)

    monkeypatch.setattr(FetchResult, "open", counted)
    assert packages_of(files, "2023.06")
    assert opened.count("eessi_api_metadata_ext-python.json") == 2
    assert opened.count("eessi_api_metadata_software.json") == 3
