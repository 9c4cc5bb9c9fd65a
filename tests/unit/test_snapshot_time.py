"""The snapshot time: read from the data by the adapters, else from Last-Modified, and the
service's comparison (syncd/service/staleness.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.base import upstream_time
from adapters.eessi import EessiAdapter
from adapters.fetch import Fetcher, newest_last_modified
from adapters.spack import SpackAdapter
from syncd.config import Settings
from syncd.domain import CatalogInfo, CatalogSnapshot, CatalogType
from syncd.errors import StaleSnapshotError
from syncd.service.staleness import refuse_older, with_snapshot_time
from tests.support import upstream_data
from tests.support.fake_upstream import static_transport

SETTINGS = Settings(
    eessi_source="https://upstream.test/eessi/",
    spack_source="https://upstream.test/spack/repology.json",
    eessi_extensions=False,
    fetch_retries=0,
)
STORED = datetime(2026, 3, 18, 2, 15, 12, tzinfo=UTC)


def test_upstream_time_reads_iso_stamps_in_utc() -> None:
    assert upstream_time("2026-03-18T02:15:12.970204Z") == datetime(
        2026, 3, 18, 2, 15, 12, 970204, tzinfo=UTC
    )
    # Spack's last_update has no zone: it is UTC.
    assert upstream_time("2026-11-27 05:38:00.052606") == datetime(
        2026, 11, 27, 5, 38, 0, 52606, tzinfo=UTC
    )
    assert upstream_time("2026-03-18T04:15:12+02:00") == STORED
    for unreadable in (None, 17, "", "yesterday", "2026-13-45"):
        assert upstream_time(unreadable) is None


def test_newest_last_modified_of_the_files() -> None:
    validators = {
        "https://u/a.json": {"etag": '"1"', "last_modified": "Wed, 18 Mar 2026 02:15:12 GMT"},
        "https://u/b.json": {"last_modified": "Tue, 17 Mar 2026 00:00:00 GMT"},
        "https://u/c.json": {"absent": True},
        "https://u/d.json": {"last_modified": "not a date"},
    }
    assert newest_last_modified(validators) == STORED
    assert newest_last_modified({"https://u/c.json": {"absent": True}}) is None


def test_the_adapters_state_their_snapshot_time() -> None:
    files = {
        "/eessi/eessi_api_metadata_software.json": upstream_data.dumps(
            upstream_data.eessi_software_document()
        ),
        "/spack/repology.json": upstream_data.dumps(upstream_data.spack_document()),
    }
    fetcher = Fetcher(SETTINGS, transport=static_transport(files))
    eessi = EessiAdapter(SETTINGS).fetch_snapshot(fetcher)
    spack = SpackAdapter(SETTINGS).fetch_snapshot(fetcher)
    assert eessi is not None and spack is not None
    assert eessi.catalog.snapshot_time == upstream_time(upstream_data.EESSI_TIMESTAMP)
    assert spack.catalog.snapshot_time == upstream_time(upstream_data.SPACK_LAST_UPDATE)


def snapshot(stated: datetime | None, last_modified: str | None = None) -> CatalogSnapshot:
    info = CatalogInfo("X", "1", CatalogType.PACKAGE_MANAGER, snapshot_time=stated)
    validators = {"https://u/x.json": {"last_modified": last_modified}} if last_modified else {}
    return CatalogSnapshot(info, [], validators)


def test_the_stated_time_wins_else_last_modified_to_the_second_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    stated = datetime(2026, 3, 18, 4, 15, 12, 999999, tzinfo=plus_two)
    lm = "Thu, 01 Jan 2026 00:00:00 GMT"
    assert with_snapshot_time(snapshot(stated, lm)).catalog.snapshot_time == STORED
    fallback = with_snapshot_time(snapshot(None, lm)).catalog.snapshot_time
    assert fallback == datetime(2026, 1, 1, tzinfo=UTC)
    assert with_snapshot_time(snapshot(None)).catalog.snapshot_time is None


def test_refuse_older() -> None:
    older = STORED - timedelta(seconds=1)
    with pytest.raises(StaleSnapshotError) as refused:
        refuse_older(older, STORED, force=False)
    assert (
        "upstream snapshot 2026-03-18T02:15:11Z is older than the stored 2026-03-18T02:15:12Z"
        in refused.value.message
    )
    refuse_older(older, STORED, force=True)  # forced
    refuse_older(STORED, STORED.replace(microsecond=500), force=False)  # same second: equal
    refuse_older(STORED.replace(tzinfo=None), STORED, force=False)  # naive = UTC (SQLite)
    refuse_older(None, STORED, force=False)  # unknown: nothing to compare
    refuse_older(older, None, force=False)  # nothing stored yet
