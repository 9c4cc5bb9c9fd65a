"""The adapters on the real upstream samples and against the fake upstream's faults."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import adapters.spack as spack_module
from adapters.eessi import EessiAdapter
from adapters.fetch import Fetcher
from adapters.spack import SpackAdapter
from syncd.config import Settings
from syncd.domain import CatalogSnapshot, PackageRecord
from syncd.errors import UpstreamError
from syncd.versioning import spack_version_key
from tests.support.eessi_old_format import to_old_format
from tests.support.fake_upstream import EXTENSION_TYPES, FakeUpstream

FILE_SETTINGS = Settings(allow_file_sources=True)


def consume(snapshot: CatalogSnapshot | None) -> list[PackageRecord]:
    assert snapshot is not None
    return list(snapshot.packages)


def count_eessi(doc: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """{EESSI module version: (software, installations)} counted straight from the JSON."""
    per_stack: dict[str, dict[str, int]] = {}
    for name, software in doc["software"].items():
        for entry in software["versions"]:
            first = entry["required_modules"][0]
            stack = first["module_version"] if isinstance(first, dict) else first.split("/")[1]
            per_stack.setdefault(stack, {}).setdefault(name, 0)
            per_stack[stack][name] += 1
    return {s: (len(names), sum(names.values())) for s, names in per_stack.items()}


# --- the real samples ---------------------------------------------------------------------


def test_full_spack_file_yields_every_package_and_version(upstream_dir: Path) -> None:
    path = upstream_dir / "spack" / "repology.full.json.gz"
    with gzip.open(path) as stream:
        doc = json.load(stream)
    real = {k: p for k, p in doc["packages"].items() if p["name"] == k}
    expected_versions = sum(len(p["version"]) for p in real.values())
    del doc

    adapter = SpackAdapter(FILE_SETTINGS)
    fetcher = Fetcher(FILE_SETTINGS)
    assert adapter.discover(fetcher, path.as_uri()) == ["2026.11.27"]
    snapshot = adapter.fetch_snapshot(fetcher, source=path.as_uri())
    assert snapshot is not None and snapshot.catalog.version == "2026.11.27"
    names: set[str] = set()
    versions = 0
    for package in snapshot.packages:
        names.add(package.name)
        versions += len(package.versions)
        keys = [spack_version_key(v.version) for v in package.versions]
        assert keys == sorted(keys, reverse=True), package.name
        if package.name == "python":
            assert package.versions[0].version == "3.14.5"
            assert ("platform", "windows", "") in {t.key for t in package.versions[0].targets}
    assert names == set(real)
    assert len(names) == 8913  # README: 8,962 keys = 8,913 real packages + 49 aliases
    assert versions == expected_versions


def test_eessi_docs_sample_parses_with_the_readme_counts(upstream_dir: Path) -> None:
    path = upstream_dir / "eessi" / "eessi_api_metadata_software.docs-test-sample.json"
    expected = count_eessi(json.loads(path.read_text()))
    adapter, fetcher = EessiAdapter(FILE_SETTINGS), Fetcher(FILE_SETTINGS)
    assert adapter.discover(fetcher, path.as_uri()) == ["2025.06", "2023.06"]
    names: set[str] = set()
    installations = 0
    for stack in ("2023.06", "2025.06"):
        packages = consume(adapter.fetch_snapshot(fetcher, version=stack, source=path.as_uri()))
        n_versions = sum(len(p.versions) for p in packages)
        assert (len(packages), n_versions) == expected[stack]
        names |= {p.name for p in packages}
        installations += n_versions
    # README: 6 software, 18 installations, 2 with GPU builds, hatchling has extensions.
    assert (len(names), installations) == (6, 18)


def test_eessi_riscv_sample_parses(upstream_dir: Path) -> None:
    path = upstream_dir / "eessi" / "eessi_api_metadata-riscv_software.docs-test-sample.json"
    adapter, fetcher = EessiAdapter(FILE_SETTINGS), Fetcher(FILE_SETTINGS)
    assert adapter.discover(fetcher, path.as_uri()) == ["2025.06-001"]
    snapshot = adapter.fetch_snapshot(fetcher, source=path.as_uri())
    assert snapshot is not None and snapshot.catalog.version == "2025.06-001"
    packages = list(snapshot.packages)
    assert (len(packages), sum(len(p.versions) for p in packages)) == (8, 12)
    targets = {t.metadata["full_arch"] for p in packages for v in p.versions for t in v.targets}
    assert targets == {"riscv64/generic"}


def test_eessi_docs_sample_in_the_pre_2026_format_gives_the_same_records(
    upstream_dir: Path, tmp_path: Path
) -> None:
    doc = json.loads(
        (upstream_dir / "eessi" / "eessi_api_metadata_software.docs-test-sample.json").read_text()
    )
    new_path, old_path = tmp_path / "new.json", tmp_path / "old.json"
    new_path.write_text(json.dumps(doc))
    old_path.write_text(json.dumps(to_old_format(doc)))
    adapter, fetcher = EessiAdapter(FILE_SETTINGS), Fetcher(FILE_SETTINGS)
    for stack in ("2023.06", "2025.06"):
        new, old = (
            consume(adapter.fetch_snapshot(fetcher, version=stack, source=p.as_uri()))
            for p in (new_path, old_path)
        )
        assert [p.name for p in old] == [p.name for p in new]
        for a, b in zip(old, new, strict=True):
            assert [v.key for v in a.versions] == [v.key for v in b.versions], a.name
            for va, vb in zip(a.versions, b.versions, strict=True):
                assert va.metadata["module"] == vb.metadata["module"]
                assert va.metadata["required_modules"] == vb.metadata["required_modules"]
                assert va.dependencies == vb.dependencies
                assert va.targets == vb.targets
                assert vb.metadata["module"] not in vb.dependencies


@pytest.fixture(scope="module")
def full_upstream(upstream_dir: Path) -> Iterator[FakeUpstream]:
    with FakeUpstream("full", data_dir=upstream_dir) as up:
        yield up


@pytest.mark.slow
def test_eessi_fullscale_over_http_with_extension_files(
    full_upstream: FakeUpstream, upstream_dir: Path
) -> None:
    doc = json.loads(
        (upstream_dir / "eessi" / "eessi_api_metadata_software.fullscale.derived.json").read_text()
    )
    expected = count_eessi(doc)

    # A module listing itself as an extension (hatchling 1.18.0 in
    # hatchling/1.18.0-GCCcore-12.3.0) is the software version's own build, not another version.
    def build(name: str, entry: dict[str, Any]) -> tuple[str, ...]:
        stack = entry["required_modules"][0]["module_version"]
        return (stack, name, entry["version"], entry["module"]["full_module_name"])

    own_builds = {build(n, e) for n, s in doc["software"].items() for e in s["versions"]}
    ext_entries = 0
    for t in EXTENSION_TYPES:
        ext = json.loads(full_upstream.content(f"/eessi/eessi_api_metadata_ext-{t}.json"))
        ext_entries += sum(
            build(n, e) not in own_builds for n, s in ext["software"].items() for e in s["versions"]
        )
    settings = full_upstream.settings()
    adapter, fetcher = EessiAdapter(settings), Fetcher(settings)
    seen_ext = 0
    for stack, readme_count in (("2023.06", 1240), ("2025.06", 1055)):
        packages = consume(adapter.fetch_snapshot(fetcher, version=stack))
        own = [v for p in packages for v in p.versions if "extension_type" not in v.metadata]
        assert len(own) == expected[stack][1] == readme_count
        seen_ext += sum(1 for p in packages for v in p.versions if "extension_type" in v.metadata)
        assert len({p.name for p in packages}) == len(packages)
        by_name = {p.name: p for p in packages}
        assert all(parent in by_name for p in packages for parent in p.parent_names)
    assert seen_ext == ext_entries
    # The extension files travel gzip-encoded: far fewer bytes than their JSON.
    assert fetcher.bytes_downloaded < 2 * 3_799_926 + 2 * 400_000


@pytest.mark.slow
def test_full_spack_over_http_then_conditional_refetch(
    full_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = full_upstream.settings()
    adapter, fetcher = SpackAdapter(settings), Fetcher(settings)
    first = adapter.fetch_snapshot(fetcher)
    assert first is not None
    assert sum(1 for _ in first.packages) == 8913
    monkeypatch.setattr(spack_module, "read_top_level", _must_not_parse)
    monkeypatch.setattr(spack_module, "iter_packages", _must_not_parse)
    before = fetcher.bytes_downloaded
    assert adapter.fetch_snapshot(fetcher, validators=first.validators) is None
    last = full_upstream.requests_for(FakeUpstream.SPACK)[-1]
    assert (last.status, last.body_bytes) == (304, 0)
    assert fetcher.bytes_downloaded == before


def _must_not_parse(*args: object, **kwargs: object) -> None:
    raise AssertionError("parsed an unchanged upstream")


# --- faults from the fake upstream --------------------------------------------------------


@pytest.fixture
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:  # real samples, or synthetic data without them
        yield server


def fetcher_for(up: FakeUpstream, **overrides: Any) -> tuple[Settings, Fetcher]:
    settings = up.settings(fetch_retries=0, fetch_read_timeout=0.3, **overrides)
    return settings, Fetcher(settings, sleep=lambda _s: None)


@pytest.mark.parametrize(
    ("kind", "options", "transient", "words"),
    [
        ("500", {}, True, "HTTP 500"),
        ("429", {"retry_after": 3600}, True, "rate-limiting"),
        ("slow", {"drip_bytes": 16, "delay": 2}, True, "Timed out"),
        ("stall", {"delay": 3}, True, "Timed out"),
        ("truncated_body", {}, True, "broke before the whole body"),
        ("truncated_json", {}, False, "not valid JSON"),
        ("invalid_json", {}, False, "not valid JSON"),
        ("wrong_schema", {}, False, "does not look like"),
        ("oversized", {}, False, "SYNCD_FETCH_MAX_BYTES"),
        ("redirect", {}, False, "SYNCD_ALLOWED_REDIRECT_HOSTS"),
        ("deep_nesting", {"depth": 100}, False, "more than 32 levels deep"),
        ("gzip_body", {"padding": 4_000_000}, False, "SYNCD_FETCH_MAX_BYTES counts the unpacked"),
    ],
)
@pytest.mark.parametrize("adapter_name", ["Spack", "EESSI"])
def test_each_fault_is_a_classified_error(
    up: FakeUpstream,
    adapter_name: str,
    kind: str,
    options: dict[str, Any],
    transient: bool,
    words: str,
) -> None:
    settings, fetcher = fetcher_for(up, fetch_max_bytes=2_000_000)
    adapter = SpackAdapter(settings) if adapter_name == "Spack" else EessiAdapter(settings)
    path = FakeUpstream.SPACK if adapter_name == "Spack" else FakeUpstream.EESSI_SOFTWARE
    up.fault(path, kind, **options)
    with pytest.raises(UpstreamError) as caught:
        consume(adapter.fetch_snapshot(fetcher))
    err = caught.value
    assert err.transient is transient, err.message
    assert words in err.message
    assert err.url is not None and err.url.endswith(path)


def test_changed_etag_with_identical_content_is_not_modified(up: FakeUpstream) -> None:
    settings, fetcher = fetcher_for(up)
    adapter = SpackAdapter(settings)
    up.fault(FakeUpstream.SPACK, "changed_etag")
    first = adapter.fetch_snapshot(fetcher)
    assert first is not None
    list(first.packages)
    # A new ETag means a download, but the body hashes as before: nothing to parse.
    assert adapter.fetch_snapshot(fetcher, validators=first.validators) is None
    assert up.requests_for(FakeUpstream.SPACK)[-1].body_bytes > 0


def test_transient_faults_are_retried_inside_one_attempt(up: FakeUpstream) -> None:
    settings = up.settings(fetch_retries=2)
    fetcher = Fetcher(settings, sleep=lambda _s: None)
    up.fault(FakeUpstream.SPACK, "500", times=1)
    up.fault(FakeUpstream.EESSI_SOFTWARE, "429", times=2, retry_after=1)
    assert consume(SpackAdapter(settings).fetch_snapshot(fetcher))
    assert consume(EessiAdapter(settings).fetch_snapshot(fetcher))


def test_eessi_conditional_refetch_over_http(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, fetcher = fetcher_for(up)
    adapter = EessiAdapter(settings)
    first = adapter.fetch_snapshot(fetcher)
    assert first is not None
    consume(first)
    up.reset_requests()
    import adapters.eessi.adapter as eessi_module

    monkeypatch.setattr(eessi_module, "read_header", _must_not_parse)
    assert adapter.fetch_snapshot(fetcher, validators=first.validators) is None
    assert all(r.body_bytes == 0 or r.status == 404 for r in up.requests)
    assert FakeUpstream.EESSI_SOFTWARE in {r.path for r in up.requests if r.status == 304}


def test_synthetic_dataset_serves_both_adapters(tmp_path: Path) -> None:
    # What the fake upstream serves on a machine without ../shared/upstream.
    with FakeUpstream(data_dir=tmp_path / "absent") as server:
        assert server.dataset == "synthetic"
        settings = server.settings()
        fetcher = Fetcher(settings)
        assert SpackAdapter(settings).discover(fetcher) == ["2026.11.27"]
        assert EessiAdapter(settings).discover(fetcher) == ["2025.06", "2023.06"]
        eessi = consume(EessiAdapter(settings).fetch_snapshot(fetcher, version="2023.06"))
        assert any(p.is_extension for p in eessi)
        assert consume(SpackAdapter(settings).fetch_snapshot(fetcher))
