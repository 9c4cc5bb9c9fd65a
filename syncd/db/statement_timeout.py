"""A time limit on every statement of an engine (the API's): one database-side mechanism per
dialect, set up once per pooled connection, never per request.

PostgreSQL cancels a statement past `statement_timeout` (set through the connection's libpq
options, so it costs no round trip); SQLite has no such setting, so a progress handler aborts
a statement past its deadline. Either way the statement stops in the database, which a client
that hangs up cannot make happen: the API's handlers run in threads FastAPI cannot cancel.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL

# SQLite virtual machine instructions between two deadline checks: a few microseconds of work,
# so a statement overruns its deadline by well under a millisecond.
PROGRESS_INSTRUCTIONS = 10_000
_DEADLINE = "statement_deadline"


def postgres_connect_args(url: URL, timeout_ms: int) -> dict[str, Any]:
    """libpq `options` that give every session of the connection `statement_timeout`; any
    options the URL already has are kept."""
    given = url.query.get("options", "")
    if isinstance(given, tuple):
        given = " ".join(given)
    return {"options": f"{given} -c statement_timeout={timeout_ms}".strip()}


@dataclass
class _Deadline:
    """The running statement's deadline on one SQLite connection (monotonic seconds)."""

    timeout_s: float
    at: float = math.inf
    lifted: bool = False

    def start(self) -> None:
        self.at = math.inf if self.lifted else time.monotonic() + self.timeout_s

    def passed(self) -> bool:
        return time.monotonic() > self.at


def install_sqlite_deadline(engine: Engine, timeout_ms: int) -> None:
    """Abort (sqlite3.OperationalError "interrupted") any statement of `engine` that runs longer
    than `timeout_ms`: the clock starts when the statement is sent, and covers reading its rows."""

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        deadline = _Deadline(timeout_ms / 1000)
        record.info[_DEADLINE] = deadline
        # A true return value makes SQLite abort the statement.
        dbapi_connection.set_progress_handler(deadline.passed, PROGRESS_INSTRUCTIONS)

    def before_execute(conn: Connection, *_args: Any) -> None:
        deadline = conn.info.get(_DEADLINE)
        if deadline is not None:
            deadline.start()

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        deadline = record.info.get(_DEADLINE)
        if deadline is not None:
            deadline.lifted = False
            deadline.at = math.inf

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "before_cursor_execute", before_execute)
    event.listen(engine, "checkin", on_checkin)


def lift(connection: Connection) -> None:
    """No time limit for the rest of `connection`'s transaction (PostgreSQL) or checkout
    (SQLite): for the few writes that may rightly take long, such as deleting a whole catalog."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        return
    deadline = connection.info.get(_DEADLINE)
    if deadline is not None:
        deadline.lifted = True


def is_statement_timeout(error: BaseException) -> bool:
    """`error` (a DBAPI error or SQLAlchemy's wrapper) is a statement stopped by the limit."""
    original = getattr(error, "orig", error)
    if isinstance(original, psycopg.errors.QueryCanceled):
        return True
    return isinstance(original, sqlite3.OperationalError) and str(original) == "interrupted"
