"""Engine and session factory for PostgreSQL (psycopg 3) and SQLite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, make_url
from sqlalchemy.orm import Session, sessionmaker

from syncd.db.statement_timeout import install_sqlite_deadline, postgres_connect_args

# Connections kept open per process: as many as the API's thread pool runs handlers at once
# (anyio's default limiter, SYNCD_API_THREADS), so a busy API never opens and closes
# connections per request. Connections are opened on demand: a worker with 4 threads holds 4.
DEFAULT_POOL_SIZE = 40
DEFAULT_MAX_OVERFLOW = 10
# A pooled connection idle for longer than this is pinged before it is handed out (one
# round trip); one in steady use is not: a dead one fails its statement, and SQLAlchemy then
# invalidates the whole pool, so a database restart costs the requests in flight, not more.
PING_AFTER_IDLE_SECONDS = 5.0
# How long a SQLite write waits for the write lock before "database is locked" (the API then
# answers 503 saying a sync holds it). A sync holds the lock only for its set-based diff
# (about 5 s for a first import of the full EESSI catalog), so a write rarely waits that long.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Accept the plain postgresql:// form and pick psycopg 3 for it."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, statement_timeout_ms: int = 0, **kwargs: Any) -> Engine:
    """`statement_timeout_ms` > 0 stops any statement that runs longer (the API's engine; see
    statement_timeout.py); the worker's syncs have no such limit."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if statement_timeout_ms > 0:
            install_sqlite_deadline(engine, statement_timeout_ms)
        return engine
    if statement_timeout_ms > 0:
        kwargs["connect_args"] = {
            **kwargs.get("connect_args", {}),
            **postgres_connect_args(make_url(url), statement_timeout_ms),
        }
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", DEFAULT_POOL_SIZE)
        kwargs.setdefault("max_overflow", DEFAULT_MAX_OVERFLOW)
    ping_idle = "pool_pre_ping" not in kwargs
    engine = create_engine(url, **kwargs)
    if ping_idle:
        event.listen(engine, "connect", _mark_idle)  # a new connection needs no ping
        event.listen(engine, "checkin", _mark_idle)
        event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _mark_idle(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling for connections that sat idle (the pool_pre_ping of
    SQLAlchemy pings on every checkout, a round trip per request)."""
    idle_since = record.info.get("idle_since")
    if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        if not getattr(dbapi_connection, "autocommit", True):
            dbapi_connection.rollback()  # end the transaction the ping opened
    except Exception as error:
        # The pool discards this connection and tries another (or a new one).
        raise exc.DisconnectionError(str(error)) from error


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets API readers see the last committed catalog while a sync writes the next;
    # foreign_keys makes ON DELETE CASCADE work as on PostgreSQL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
