"""Concurrent syncs and readers: one catalog is serialized, readers see old or new only,
and on PostgreSQL different catalogs sync in parallel."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from syncd.db.tables import Catalog, Package, Version
from syncd.domain import SyncStats
from syncd.sync import sync_catalog
from tests.integration.test_sync import make_catalog, rows_by_key
from tests.support.records import paused_after, snapshot, synthetic_packages

WAIT = 20.0


def state(engine: Engine, catalog_id: int) -> set[tuple[Any, ...]]:
    return set(rows_by_key(engine, catalog_id))


def visible_counts(engine: Engine, catalog_id: int) -> tuple[int, int, int]:
    """What a reader on another connection sees right now."""
    with engine.connect() as conn:
        packages = conn.scalar(
            select(func.count()).select_from(Package).where(Package.catalog_id == catalog_id)
        )
        versions = conn.scalar(
            select(func.count()).select_from(Version).where(Version.catalog_id == catalog_id)
        )
        listed = conn.scalar(
            select(Catalog.__table__.c.package_count).where(Catalog.__table__.c.id == catalog_id)
        )
        return int(packages or 0), int(versions or 0), int(listed or 0)


def test_two_concurrent_syncs_of_one_catalog_end_as_one(engine: Engine) -> None:
    cid = make_catalog(engine)
    reference_engine_state: set[tuple[Any, ...]]
    # The reference: the same snapshot synced once into another catalog, compared by keys.
    ref = make_catalog(engine, version="ref")
    sync_catalog(engine, ref, snapshot(synthetic_packages(120)))
    reference_engine_state = state(engine, ref)

    start = threading.Barrier(2)

    def run() -> SyncStats:
        start.wait()
        return sync_catalog(engine, cid, snapshot(synthetic_packages(120)), lock_timeout=WAIT)

    with ThreadPoolExecutor(2) as pool:
        results = [f.result(timeout=WAIT * 2) for f in [pool.submit(run), pool.submit(run)]]

    assert state(engine, cid) == reference_engine_state
    # One of them imported, the other found nothing to do.
    assert sorted(r.packages.created for r in results) == [0, 120]
    assert sorted(r.rows_written for r in results)[0] == 0


def test_reader_sees_old_catalog_while_sync_runs(engine: Engine) -> None:
    cid = make_catalog(engine)
    sync_catalog(engine, cid, snapshot(synthetic_packages(50)))
    old = visible_counts(engine, cid)
    assert old[0] == old[2] == 50

    paused, resume = threading.Event(), threading.Event()

    def pause() -> None:
        paused.set()
        assert resume.wait(WAIT)

    # Half the new snapshot is staged, 30 old packages are gone from it, 80 are new.
    new = paused_after(synthetic_packages(100, seed=7), 60, pause)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(sync_catalog, engine, cid, snapshot(new), lock_timeout=WAIT)
        assert paused.wait(WAIT)
        assert visible_counts(engine, cid) == old
        resume.set()
        stats = future.result(timeout=WAIT)
    assert stats.packages.created == 50
    after = visible_counts(engine, cid)
    assert after[0] == after[2] == 100


def test_different_catalogs_sync_in_parallel_on_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has a single writer per database")
    a = make_catalog(engine, version="a")
    b = make_catalog(engine, version="b")
    paused, resume = threading.Event(), threading.Event()

    def pause() -> None:
        paused.set()
        assert resume.wait(WAIT)

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            sync_catalog,
            engine,
            a,
            snapshot(paused_after(synthetic_packages(30), 10, pause)),
            lock_timeout=WAIT,
        )
        assert paused.wait(WAIT)
        # a's sync holds its lock (and is mid-transaction); b must not wait for it.
        stats_b = sync_catalog(engine, b, snapshot(synthetic_packages(20)), lock_timeout=1.0)
        assert stats_b.packages.created == 20
        resume.set()
        assert held.result(timeout=WAIT).packages.created == 30
