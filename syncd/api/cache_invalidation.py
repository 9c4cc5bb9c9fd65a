"""Clearing the API's response cache when any process changes the data it serves.

Writes through this API process and syncs inside it clear the cache directly (cache.py,
syncd.cache_events); this module covers every other writer: a separate worker, `syncd
import`, another API replica, the scheduler's stamps, an operator's SQL.

PostgreSQL: migration 0018 puts a statement-level trigger on every table the cached answers
read, calling `pg_notify(CHANNEL, '')`; PostgreSQL delivers it at commit, once per
transaction. A daemon thread holds one connection of its own that LISTENs and clears the
cache on each notification. While that connection is down (lost, database restarting) the
cache cannot know what changed, so it is cleared and bypassed (`cache.suspend()`) until the
thread listens again (`cache.resume()`, which clears once more: what was committed meanwhile
was never announced).

SQLite (one file): `PRAGMA data_version` on a connection of our own changes whenever another
connection, of any process, committed; a daemon thread reads it every SQLITE_POLL_SECONDS
and clears on change. An in-memory database has no other process: nothing is watched.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Engine

from syncd.api.cache import ResponseCache
from syncd.logging import get_logger

log = get_logger(__name__)

CHANNEL = "syncd_data_changed"
SQLITE_POLL_SECONDS = 0.1
# How long one wait for notifications lasts before the thread looks at its stop flag.
LISTEN_WAIT_SECONDS = 0.5
RETRY_MIN_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
# How long the app's start waits for the first connection: with a reachable database the
# cache serves from the first request; with none, the app starts anyway, cache suspended.
START_WAIT_SECONDS = 2.0
APPLICATION_NAME = "syncd-api-cache-listener"
# A silently lost server (no RST) is noticed by TCP keepalives within about 20 s.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 2}  # fmt: skip


class Watcher(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


WatcherFactory = Callable[[Engine, ResponseCache], "Watcher | None"]


def watcher_for(engine: Engine, cache: ResponseCache) -> Watcher | None:
    """The watcher of `engine`'s database, or None when no other process can write to it."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        return _Watcher(cache, _PostgresSource(engine), "listen")
    if backend == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return _Watcher(cache, _SqliteSource(str(engine.url.database)), "poll")
    return None


class _Source(Protocol):
    def open(self) -> None:
        """Connect; from now on every commit of another connection is seen by `wait`."""

    def wait(self, seconds: float) -> bool:
        """Whether data changed since the last call (waiting up to `seconds`); raises when
        the connection failed."""

    def close(self) -> None: ...


class _Watcher:
    """The thread keeping `cache` honest: clears on every change its source reports,
    suspends the cache while the source is down."""

    def __init__(self, cache: ResponseCache, source: _Source, how: str) -> None:
        self.cache = cache
        self.source = source
        self.how = how
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_since: float | None = None
        self._first_try = threading.Event()

    def start(self) -> None:
        # Nothing is vouched for until the source is open.
        self.cache.suspend()
        self._thread = threading.Thread(target=self._run, name="syncd-cache-watcher", daemon=True)
        self._thread.start()
        self._first_try.wait(START_WAIT_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=LISTEN_WAIT_SECONDS * 4)

    def _run(self) -> None:
        retry = RETRY_MIN_SECONDS
        while not self._stop.is_set():
            try:
                self.source.open()
                self.cache.resume()
                self._first_try.set()
                self._recovered()
                retry = RETRY_MIN_SECONDS
                while not self._stop.is_set():
                    if self.source.wait(LISTEN_WAIT_SECONDS):
                        self.cache.clear()
            except Exception as exc:
                self.cache.suspend()
                self._outage(exc)
                self._first_try.set()
                self._stop.wait(retry)
                retry = min(retry * 2, RETRY_MAX_SECONDS)
            finally:
                _close_quietly(self.source)

    def _outage(self, exc: Exception) -> None:
        if self._down_since is not None:
            return  # said once per outage
        self._down_since = time.monotonic()
        log.warning(
            "api_cache_bypassed",
            watcher=self.how,
            error_class=type(exc).__name__,
            error=str(exc).strip(),
            retry_max_seconds=RETRY_MAX_SECONDS,
        )

    def _recovered(self) -> None:
        if self._down_since is None:
            return
        log.info(
            "api_cache_resumed",
            watcher=self.how,
            down_seconds=round(time.monotonic() - self._down_since, 1),
        )
        self._down_since = None


def _close_quietly(source: _Source) -> None:
    with contextlib.suppress(Exception):  # a connection that is already gone
        source.close()


class _PostgresSource:
    def __init__(self, engine: Engine) -> None:
        # The engine's own connection arguments (host, port, user, password, dbname...),
        # on a connection outside its pool: it is held for as long as the process runs.
        args, params = engine.dialect.create_connect_args(engine.url)
        self._args: list[Any] = list(args)
        self._params: dict[str, Any] = {**params, **KEEPALIVES}
        self._params.setdefault("connect_timeout", 5)
        self._params["application_name"] = APPLICATION_NAME
        self._conn: Any = None

    def open(self) -> None:
        import psycopg

        self._conn = psycopg.connect(*self._args, **self._params, autocommit=True)
        self._conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, seconds: float) -> bool:
        changed = False
        # Returns after `seconds`, or at once after the first batch: the cache is cleared
        # once per batch of notifications, not once per notification.
        for _ in self._conn.notifies(timeout=seconds, stop_after=1):
            changed = True
        return changed

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class _SqliteSource:
    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._version = -1

    def open(self) -> None:
        # Our own connection that never writes: every commit counts as another's.
        self._conn = sqlite3.connect(self.path, timeout=1.0, isolation_level=None)
        self._version = self._read()

    def wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            version = self._read()
            if version != self._version:
                self._version = version
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(SQLITE_POLL_SECONDS, left))

    def _read(self) -> int:
        assert self._conn is not None
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
