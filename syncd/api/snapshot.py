"""One snapshot per read request: every statement a read runs (a page, its count, what its
objects embed) sees the same committed catalog, even while a sync commits the next one.

PostgreSQL: a REPEATABLE READ, READ ONLY transaction. Both are set as execution options on
the connection, which psycopg folds into the BEGIN it sends anyway: no SET statement, so
the cost over autocommit is the BEGIN and the ROLLBACK that ends it, two round trips.
SQLite: the driver begins transactions only before writes, so the read begins its own; a
deferred BEGIN takes its WAL snapshot at the first SELECT (in process, no round trip).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

POSTGRESQL_SNAPSHOT: dict[str, Any] = {
    "isolation_level": "REPEATABLE READ",
    "postgresql_readonly": True,
}


def read_snapshot(session: Session) -> Connection:
    """Begin the request's read transaction; call before the request's first statement.
    It ends when the session closes (the pool rolls it back)."""
    if session.get_bind().dialect.name == "postgresql":
        return session.connection(execution_options=POSTGRESQL_SNAPSHOT)
    connection = session.connection()
    connection.exec_driver_sql("BEGIN")
    return connection
