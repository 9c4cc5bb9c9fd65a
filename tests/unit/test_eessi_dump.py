"""EESSI dump files served over http(s) (an in-process transport): the same records as from
a file:// source (tests/integration/test_eessi_dump.py), and the refusals of its shape."""

from __future__ import annotations

import pytest

from adapters.eessi import EessiAdapter
from adapters.fetch import Fetcher
from syncd.config import Settings
from syncd.errors import UpstreamError, VersionNotOfferedError
from tests.support import upstream_data
from tests.support.eessi_dump import dump_counts, eessi_dump
from tests.support.fake_upstream import static_transport

URL = "https://mirror.test/eessi/eessi-2023.06.json"


def adapter_and_fetcher(body: bytes) -> tuple[EessiAdapter, Fetcher]:
    settings = Settings(allow_private_sources=True, fetch_retries=0)
    transport = static_transport({"/eessi/eessi-2023.06.json": body})
    return EessiAdapter(settings), Fetcher(settings, transport=transport)


def test_a_dump_over_http_gives_a_target_per_path_and_version() -> None:
    dump = eessi_dump(upstream_data.eessi_software_document(), "2023.06")
    adapter, fetcher = adapter_and_fetcher(upstream_data.dumps(dump))
    assert adapter.discover(fetcher, URL) == ["2023.06"]
    snapshot = adapter.fetch_snapshot(fetcher, source=URL)
    assert snapshot is not None
    assert snapshot.catalog.version == "2023.06"
    packages = list(snapshot.iter_packages())
    versions = [v for p in packages for v in p.versions]
    targets = [t for v in versions for t in v.targets]
    assert (len(packages), len(versions), len(targets)) == dump_counts(dump)
    assert {(t.target_name, t.target_subtype) for t in versions[0].targets} == {
        ("aarch64", "generic"), ("aarch64", "neoverse_v1"), ("x86_64", "generic"),
        ("x86_64", "amd/zen4"), ("x86_64", "intel/icelake"),
    }  # fmt: skip
    # required_modules given as strings become module objects; the EESSI module is no dependency
    assert all(d["module_name"] != "EESSI" for v in versions for d in v.dependencies)
    with pytest.raises(VersionNotOfferedError):
        adapter.fetch_snapshot(fetcher, source=URL, version="2025.06")


@pytest.mark.parametrize(
    ("targets", "why"),
    [
        ([], "not a non-empty list"),
        (["/cvmfs/software.eessi.io/versions/2023.06/software/x86_64"], "is not a path like"),
        (
            [
                "/cvmfs/software.eessi.io/versions/2023.06/software/linux/x86_64/generic",
                "/cvmfs/software.eessi.io/versions/2025.06/software/linux/x86_64/generic",
            ],
            "several EESSI versions (2023.06, 2025.06)",
        ),
    ],
)
def test_a_dump_with_unusable_targets_is_refused(targets: list[str], why: str) -> None:
    body = upstream_data.dumps({"targets": targets, "software": {"A": {"versions": {"1": {}}}}})
    adapter, fetcher = adapter_and_fetcher(body)
    with pytest.raises(UpstreamError) as refused:
        adapter.fetch_snapshot(fetcher, source=URL)
    assert why in refused.value.message and not refused.value.transient
