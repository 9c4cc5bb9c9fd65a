"""The per-catalog sync lock.

PostgreSQL: a transaction-level advisory lock keyed by the catalog id, so syncs of one
catalog run one at a time while different catalogs sync in parallel; it is released by the
commit or rollback that ends the transaction, so a crashed worker cannot leave it behind.
SQLite has a single writer per database file anyway: the lock is the write lock itself,
taken with BEGIN IMMEDIATE. The sync stages its snapshot into temporary tables first (they
need no lock: see sqlite_connection), so that other writers wait for the diff only.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from syncd.errors import LockBusyError

# First key of the two-key advisory lock form: a namespace of our own, so that a catalog id
# never collides with other advisory locks (the two-key and one-key forms never collide).
CATALOG_LOCK_NAMESPACE = 0x53594E43  # "SYNC"

# Poll interval bounds while another sync holds the lock.
_POLL_FIRST = 0.02
_POLL_MAX = 0.5


def _objid(catalog_id: int) -> int:
    # The second key is a signed int4; fold larger ids into it (a collision only makes two
    # catalogs wait for each other, never breaks correctness).
    return ((catalog_id + 2**31) % 2**32) - 2**31


def try_lock_catalog(conn: Connection, catalog_id: int) -> bool:
    """Try once to take the catalog's advisory lock for the current PostgreSQL transaction."""
    got = conn.execute(
        text("SELECT pg_try_advisory_xact_lock(:ns, :obj)"),
        {"ns": CATALOG_LOCK_NAMESPACE, "obj": _objid(catalog_id)},
    ).scalar_one()
    return bool(got)


def lock_catalog(conn: Connection, catalog_id: int, *, timeout: float) -> None:
    """Take the catalog's advisory lock for the current transaction, polling until `timeout`.

    Raises LockBusyError when another transaction still holds it then.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    delay = _POLL_FIRST
    while not try_lock_catalog(conn, catalog_id):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockBusyError(
                f"catalog {catalog_id} is being synced by another worker "
                f"(lock not acquired within {timeout:g}s)"
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX)


@contextmanager
def catalog_transaction(engine: Engine, catalog_id: int, *, timeout: float) -> Iterator[Connection]:
    """A connection inside one transaction that holds the catalog's sync lock.

    Commits when the block ends normally, rolls back on any exception.
    """
    if engine.dialect.name == "sqlite":
        with sqlite_connection(engine) as conn, sqlite_write_lock(conn, catalog_id, timeout):
            yield conn
        return
    with engine.begin() as conn:
        lock_catalog(conn, catalog_id, timeout=timeout)
        yield conn


@contextmanager
def sqlite_connection(engine: Engine) -> Iterator[Connection]:
    """A SQLite connection whose transactions are opened explicitly (by sqlite_write_lock, or
    a plain BEGIN), so that work on temporary tables can run before the write lock is taken."""
    with engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        old_isolation = raw.isolation_level
        # isolation_level None stops the sqlite3 module from issuing its own deferred BEGIN,
        # so that ours is the one that opens the transaction; commit()/rollback() still end it.
        raw.isolation_level = None
        try:
            yield conn
        finally:
            if raw.in_transaction:
                raw.rollback()
            raw.isolation_level = old_isolation


@contextmanager
def sqlite_write_lock(conn: Connection, catalog_id: int, timeout: float) -> Iterator[None]:
    """One transaction holding SQLite's write lock, taken up front with BEGIN IMMEDIATE (a
    deferred BEGIN would take it at the first write and could then fail with "database is
    locked"). Commits when the block ends normally, rolls back on any exception."""
    raw: Any = conn.connection.driver_connection
    old_busy = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute(f"PRAGMA busy_timeout = {max(int(timeout * 1000), 0)}")
    try:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except OperationalError as exc:
            if isinstance(exc.orig, sqlite3.OperationalError) and "locked" in str(exc.orig):
                raise LockBusyError(
                    f"catalog {catalog_id}: the SQLite database is being written by "
                    f"another sync (write lock not acquired within {timeout:g}s)"
                ) from exc
            raise
        raw.execute(f"PRAGMA busy_timeout = {int(old_busy)}")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    finally:
        if raw.in_transaction:
            raw.rollback()
        raw.execute(f"PRAGMA busy_timeout = {int(old_busy)}")
