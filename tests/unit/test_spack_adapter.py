"""SpackAdapter on small synthetic repology.json documents (in-process transport)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

import httpx
import pytest

import adapters.spack as spack_module
from adapters.fetch import Fetcher, FetchResult
from adapters.spack import SpackAdapter, catalog_label, flatten_urls, package_record
from syncd.config import Settings
from syncd.domain import CatalogType, PackageRecord
from syncd.errors import UpstreamError
from tests.support import upstream_data
from tests.support.fake_upstream import static_transport

URL = "https://upstream.test/spack/repology.json"
SETTINGS = Settings(spack_source=URL, allow_private_sources=True, fetch_retries=0)


def adapter_and_fetcher(
    content: bytes, requests: list[httpx.Request] | None = None
) -> tuple[SpackAdapter, Fetcher]:
    transport = static_transport({"/spack/repology.json": content}, requests)
    return SpackAdapter(SETTINGS), Fetcher(SETTINGS, transport=transport)


def snapshot_packages(content: bytes) -> dict[str, PackageRecord]:
    adapter, fetcher = adapter_and_fetcher(content)
    snapshot = adapter.fetch_snapshot(fetcher)
    assert snapshot is not None
    return {p.name: p for p in snapshot.packages}


@pytest.fixture
def doc() -> dict[str, Any]:
    return upstream_data.spack_document()


def test_snapshot_counts_and_catalog(doc: dict[str, Any]) -> None:
    adapter, fetcher = adapter_and_fetcher(upstream_data.dumps(doc))
    snapshot = adapter.fetch_snapshot(fetcher)
    assert snapshot is not None
    assert isinstance(snapshot.packages, Iterator)  # streamed, not a list
    assert snapshot.catalog.name == "Spack"
    assert snapshot.catalog.catalog_type is CatalogType.SOURCE_PACKAGE
    assert snapshot.catalog.version == "2026.11.27"
    assert snapshot.catalog.rolling  # the catalog row follows the moving label
    assert snapshot.catalog.metadata["num_packages"] == doc["num_packages"]
    assert snapshot.catalog.source_url == URL
    assert set(snapshot.validators) == {URL}
    packages = list(snapshot.packages)
    expected_packages, expected_versions = upstream_data.spack_counts(doc)
    assert len(packages) == expected_packages
    assert sum(len(p.versions) for p in packages) == expected_versions
    assert "pkg-alias" not in {p.name for p in packages}


def test_discover_reports_the_last_update_label(doc: dict[str, Any]) -> None:
    adapter, fetcher = adapter_and_fetcher(upstream_data.dumps(doc))
    assert adapter.discover(fetcher) == ["2026.11.27"]


def test_versions_newest_first_with_branches_kept(doc: dict[str, Any]) -> None:
    packages = snapshot_packages(upstream_data.dumps(doc))
    pkg = packages["pkg-003"]  # 4 numbered versions written oldest first, plus develop
    assert [v.version for v in pkg.versions] == ["develop", "3.3.7", "2.3.8", "1.3.9", "0.3.10"]
    develop = pkg.versions[0]
    assert develop.metadata["branch"] == "develop"
    assert develop.metadata["downloads"] == []
    # Waldur's loader: a branch version without downloads has no location.
    assert develop.targets[0].location == ""
    assert pkg.versions[1].metadata["branch"] == ""  # a release, as Waldur stores it


def test_odd_download_shapes(doc: dict[str, Any]) -> None:
    packages = snapshot_packages(upstream_data.dumps(doc))
    empty = packages["pkg-001"].versions[-1]  # downloads [[]]
    assert empty.metadata["downloads"] == [] and empty.targets[0].location == ""
    nested = packages["pkg-002"].versions[-1]
    assert nested.metadata["downloads"] == [
        "https://example.org/pkg-002/pkg-002-0.2.10.tar.gz",
        "https://mirror.example/x",
    ]
    assert nested.targets[0].location == nested.metadata["downloads"][0]
    assert flatten_urls([["a", ["b"]], None, "", "c", 3]) == ["a", "b", "c"]


def test_targets_from_categories(doc: dict[str, Any]) -> None:
    packages = snapshot_packages(upstream_data.dumps(doc))

    def keys(name: str) -> set[tuple[str, str, str]]:
        return {t.key for t in packages[name].versions[0].targets}

    default = ("build_variant", "default", "")
    assert keys("pkg-000") == {
        default,
        ("platform", "windows", ""),
        ("build_system", "build-tool", ""),
    }
    assert keys("pkg-001") == {default, ("external", "system", "")}
    assert keys("pkg-002") == {default}


def test_package_fields(doc: dict[str, Any]) -> None:
    pkg = snapshot_packages(upstream_data.dumps(doc))["pkg-005"]
    assert pkg.description == "Synthetic package 5."
    assert pkg.homepage == "https://example.org/pkg-005"
    assert pkg.licenses == ["Apache-2.0"] and pkg.maintainers == ["someone"]
    assert pkg.versions[0].dependencies == ["pkg-000"]
    assert not pkg.is_extension


def test_package_record_tolerates_bad_entries() -> None:
    assert package_record("alias", {"name": "real"}) is None
    assert package_record("x", "not an object") is None
    record = package_record(
        "x", {"name": "x", "version": {"version": "1.0", "downloads": None}, "homepages": []}
    )
    assert record is not None and [v.version for v in record.versions] == ["1.0"]
    assert record.homepage is None
    record = package_record("y", {"version": [{"version": ""}, "junk", {"version": "2"}]})
    assert record is not None and [v.version for v in record.versions] == ["2"]


def test_catalog_label() -> None:
    assert catalog_label("2026-11-27 05:38:00.052606") == "2026.11.27"
    assert catalog_label("2025-01-02T03:04:05Z") == "2025.01.02"
    with pytest.raises(ValueError):
        catalog_label("yesterday")


def test_unchanged_upstream_is_neither_downloaded_nor_parsed(
    doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    requests: list[httpx.Request] = []
    adapter, fetcher = adapter_and_fetcher(upstream_data.dumps(doc), requests)
    first = adapter.fetch_snapshot(fetcher)
    assert first is not None
    list(first.packages)

    def must_not_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed an unchanged upstream")

    monkeypatch.setattr(spack_module, "read_top_level", must_not_parse)
    monkeypatch.setattr(spack_module, "iter_packages", must_not_parse)
    before = fetcher.bytes_downloaded
    assert adapter.fetch_snapshot(fetcher, validators=first.validators) is None
    assert fetcher.bytes_downloaded == before
    assert requests[-1].headers["if-none-match"] == first.validators[URL]["etag"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"last_update": "2026-01-01 00:00:00", "packages": {"a": {"name": "a"',
            "not valid JSON",
        ),
        (b"<html>maintenance</html>", "not valid JSON"),
        (b'["a", "list"]', "not a JSON object"),
        (b'{"last_update": "2026-01-01 00:00:00"}', "no 'packages' object"),
        (b'{"packages": {}}', "no 'last_update'"),
        (b'{"packages": {}, "last_update": "soon"}', "no date"),
    ],
)
def test_bad_documents_are_permanent_errors_before_any_record(content: bytes, message: str) -> None:
    adapter, fetcher = adapter_and_fetcher(content)
    with pytest.raises(UpstreamError) as caught:
        adapter.fetch_snapshot(fetcher)
    assert not caught.value.transient and message in caught.value.message
    assert caught.value.url == URL


def test_last_update_after_packages_is_found(doc: dict[str, Any]) -> None:
    reordered = {"packages": doc["packages"], "last_update": "2024-02-03 00:00:00"}
    adapter, fetcher = adapter_and_fetcher(json.dumps(reordered).encode())
    snapshot = adapter.fetch_snapshot(fetcher)
    assert snapshot is not None and snapshot.catalog.version == "2024.02.03"


def test_an_empty_package_list_is_refused_at_the_end_of_the_stream() -> None:
    adapter, fetcher = adapter_and_fetcher(
        b'{"last_update": "2026-01-01 00:00:00", "packages": {}}'
    )
    snapshot = adapter.fetch_snapshot(fetcher)
    assert snapshot is not None
    with pytest.raises(UpstreamError) as caught:
        list(snapshot.packages)
    assert not caught.value.transient and "holds no package" in caught.value.message


def test_numeric_versions_keep_their_text_and_null_ones_are_named(doc: dict[str, Any]) -> None:
    pkg = doc["packages"]["pkg-000"]
    pkg["version"] = [
        {"version": "__A__", "downloads": [], "metadata_number": 1.5},
        {"version": 7, "downloads": []},
        {"version": None, "downloads": []},
        {"downloads": []},
        {"version": True, "downloads": []},
    ]
    text = json.dumps(doc).replace('"__A__"', "2.10")
    record = snapshot_packages(text.encode())["pkg-000"]
    assert [v.version for v in record.versions] == ["7", "2.10"]
    assert record.left_out == [
        "a version entry: version null upstream is not a version",
        "a version entry: no version upstream",
        "a version entry: version true upstream is not a version",
    ]


class _CountingReads:
    """A body stream that records the size of every read (and offers no readinto, so that
    any parser reads through `read`)."""

    def __init__(self, stream: IO[bytes], reads: list[int]) -> None:
        self._stream, self.reads = stream, reads

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.reads.append(len(data))
        return data

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _CountingReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_a_long_summary_is_read_in_growing_pieces(
    doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """yajl lexes an unfinished token again from its start at every read, so 64 KiB reads of
    a 4 MiB string lex it 64 times over: quadratic (4/8/16/32 MiB took 0.1/0.4/1.7/6.4 s).
    Reads that grow with the open token lex it a bounded number of times: linear. Counted,
    not timed (the timings: docs/reliability.md, Hostile inputs)."""
    size = 4 * 1024 * 1024
    name = sorted(doc["packages"])[0]
    doc["packages"][name]["summary"] = "x" * size
    passes: list[list[int]] = []
    opened = FetchResult.open

    def counting_open(self: FetchResult) -> IO[bytes]:
        passes.append([])
        return _CountingReads(opened(self), passes[-1])  # type: ignore[return-value]

    monkeypatch.setattr(FetchResult, "open", counting_open)
    packages = snapshot_packages(json.dumps(doc).encode())
    assert len(packages[name].description) == size
    assert passes
    for reads in passes:
        # What the parser is handed again while the string is open: the bytes before each
        # read (the string is nearly the whole body). 64 KiB reads: about 128 MiB here.
        relexed = sum(sum(reads[:i]) for i in range(1, len(reads)))
        assert relexed <= 4 * size, reads
