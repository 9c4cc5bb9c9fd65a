"""Leader election: only the holder of a PostgreSQL advisory lock ticks.

A module of its own because the lock lives on a dedicated connection with its own
lifetime, unrelated to the engine the ticks use; SQLite needs no election at all.
"""

from __future__ import annotations

import contextlib
import threading

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.logging import get_logger

log = get_logger(__name__)

# The (int4, int4) advisory lock key of the leader ("sync", "schd"): advisory locks are per
# database, so one constant key elects one leader per syncd database.
LEADER_LOCK_KEY = (0x73796E63, 0x73636864)


# --- leader election -----------------------------------------------------------------------


class AdvisoryLeader:
    """Leadership = holding a PostgreSQL session-level advisory lock.

    The lock lives as long as the session, so it is held on a connection of its own (a
    NullPool engine: never handed to other code, never recycled by a pool) that stays open
    while this process leads. A standby holds no connection between attempts.
    """

    def __init__(self, database_url: str, *, key: tuple[int, int] = LEADER_LOCK_KEY) -> None:
        self.key = key
        self._engine = make_engine(
            database_url,
            poolclass=NullPool,
            connect_args={
                "connect_timeout": 5,
                "application_name": "syncd-scheduler-leader",
                # Notice a dead server or network within about 25 s on our side.
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
        )
        self._conn: Connection | None = None
        self._guard = threading.Lock()
        self._standby_logged = False

    @property
    def is_leader(self) -> bool:
        return self._conn is not None

    def ensure(self) -> bool:
        """True if this process holds the lock now: checks a held lock, else tries to get it."""
        with self._guard:
            if self._conn is not None:
                if self._still_held(self._conn):
                    return True
                self._drop()
                log.warning("scheduler_leadership_lost", lock_key=list(self.key))
            acquired = self._try_acquire()
            if acquired:
                log.info("scheduler_leadership_acquired", lock_key=list(self.key))
            elif not self._standby_logged:
                # Once per spell as standby, so an operator sees which replica waits.
                log.info("scheduler_standby", lock_key=list(self.key))
            self._standby_logged = not acquired
            return acquired

    def release(self) -> None:
        with self._guard:
            if self._conn is not None:
                # Closing the session below releases the lock anyway.
                with contextlib.suppress(DBAPIError):
                    self._conn.execute(
                        text("SELECT pg_advisory_unlock(:a, :b)"),
                        {"a": self.key[0], "b": self.key[1]},
                    )
                self._drop()
                log.info("scheduler_leadership_released", lock_key=list(self.key))
            self._engine.dispose()

    def _try_acquire(self) -> bool:
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except DBAPIError as exc:
            log.warning("scheduler_leader_connect_failed", error=str(exc.orig or exc))
            return False
        try:
            # Our own session settings: the server notices a vanished leader within about
            # 25 s even without a FIN (host crash, cut network) and frees the lock, and a
            # server-wide idle_session_timeout does not end the idle lock connection.
            for setting in ("idle = 10", "interval = 5", "count = 3"):
                conn.execute(text(f"SET tcp_keepalives_{setting}"))
            if conn.dialect.server_version_info and conn.dialect.server_version_info >= (14,):
                conn.execute(text("SET idle_session_timeout = 0"))
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": self.key[0], "b": self.key[1]}
            ).scalar_one()
        except DBAPIError as exc:
            log.warning("scheduler_leader_attempt_failed", error=str(exc.orig or exc))
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _still_held(self, conn: Connection) -> bool:
        try:
            held = conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid() AND granted AND classid = :a"
                    " AND objid = :b AND objsubid = 2)"
                ),
                {"a": self.key[0], "b": self.key[1]},
            ).scalar_one()
        except DBAPIError:
            return False
        return bool(held)

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.close()
            self._conn = None


def make_leader(settings: Settings) -> AdvisoryLeader | None:
    """The election for PostgreSQL; None (always lead) for SQLite, where one process ticks."""
    return None if settings.is_sqlite else AdvisoryLeader(settings.database_url)
