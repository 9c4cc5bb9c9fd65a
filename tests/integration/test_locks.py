"""The per-catalog sync lock (syncd/db/locks.py)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine

from syncd.db.locks import catalog_transaction, lock_catalog, try_lock_catalog
from syncd.errors import LockBusyError
from syncd.sync import sync_catalog
from tests.integration.test_sync import make_catalog
from tests.support.records import small_snapshot


def test_sync_raises_lock_busy_while_catalog_is_locked(engine: Engine) -> None:
    cid = make_catalog(engine)
    with catalog_transaction(engine, cid, timeout=1.0):
        started = time.monotonic()
        with pytest.raises(LockBusyError, match=f"catalog {cid}"):
            sync_catalog(engine, cid, small_snapshot(), lock_timeout=0.3)
        assert 0.25 <= time.monotonic() - started < 5
    # Released with the transaction: the next sync goes through.
    assert sync_catalog(engine, cid, small_snapshot(), lock_timeout=1.0).packages.created == 3


def test_lock_is_released_on_rollback(engine: Engine) -> None:
    cid = make_catalog(engine)
    with pytest.raises(RuntimeError), catalog_transaction(engine, cid, timeout=1.0):
        raise RuntimeError("boom")
    with catalog_transaction(engine, cid, timeout=0.5):
        pass


def test_sqlite_connection_is_restored_after_the_transaction(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with catalog_transaction(engine, 1, timeout=2.0):
        pass
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        assert raw.isolation_level == ""  # the sqlite3 module's default again
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
        assert not raw.in_transaction


def test_postgresql_locks_are_per_catalog(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL advisory locks")
    with engine.begin() as holder:
        lock_catalog(holder, 7, timeout=0.1)
        with engine.begin() as other:
            assert not try_lock_catalog(other, 7)
            assert try_lock_catalog(other, 8)  # another catalog is free
            with pytest.raises(LockBusyError):
                lock_catalog(other, 7, timeout=0.2)
        # Large ids fold into the int4 key without errors.
        assert try_lock_catalog(holder, 2**40 + 3)
    with engine.begin() as after:
        assert try_lock_catalog(after, 7)
