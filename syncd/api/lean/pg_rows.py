"""A lean statement read on PostgreSQL straight through psycopg (issue 16): its SQL text is
compiled once per statement object and page, and run on a connection of the engine's pool.

SQLAlchemy's Connection and result layers (execution context, parameter processing, the
cursor result and its rows) were a third of a lean read's thread (py-spy, the package list
under bench_api's 50 clients): ~0.1 ms of CPU per read of a statement whose compiled form
it already had. A statement built once (an unfiltered list, an offering page) has a
constant text per page, so what SQLAlchemy recomputes per execution is computed here once.

What stays: the engine's pool (its checkout and checkin events: the ping of an idle
connection), the connection's statement_timeout (a libpq option of every pooled
connection: db/statement_timeout.py), autocommit (no BEGIN, no ROLLBACK), and SQLAlchemy's
errors: a psycopg error is raised as SQLAlchemy's DBAPIError, a lost connection
invalidates the pool as SQLAlchemy does. Rows are named tuples: attribute and index access
as on SQLAlchemy's rows. A statement with a column SQLAlchemy converts (a result processor:
an Enum to its Python class, a JSON text) is refused here (`text_of` returns None): the
caller reads it through SQLAlchemy.
"""

from __future__ import annotations

import collections
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from json.decoder import JSONDecoder
from typing import Any

import psycopg
import psycopg.types.json
from psycopg.abc import Buffer
from sqlalchemy import ClauseElement, Engine, Executable, exc
from sqlalchemy.engine import Dialect

# Texts kept: a statement built once times the pages read of it (a crawler walking a list
# reads each page once; its texts are dropped first).
TEXTS = 1024
JSONB_OID = 3802
# json.loads' own scanner (the C one, as its default decoder makes it).
_scan: Callable[[str, int], tuple[Any, int]] = JSONDecoder().scan_once  # type: ignore[attr-defined]


def jsonb_loads(data: bytes) -> Any:
    """json.loads of jsonb's text, the same value, without json.loads' encoding detection
    and whitespace checks around the C scanner (PostgreSQL writes jsonb as UTF-8 with no
    whitespace around it): a version page's 30 JSON values cost 27 us less (of 134 us).
    Anything else is json.loads' own, errors included."""
    text = data.decode("utf-8", "surrogatepass")
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(data)
    return value if end == len(text) else json.loads(data)


class JsonbLoader(psycopg.types.json.JsonbLoader):
    def load(self, data: Buffer) -> Any:
        return jsonb_loads(data if isinstance(data, bytes) else bytes(data))


@dataclass
class Text:
    """One statement's SQL and parameters for one page, as psycopg takes them."""

    sql: str
    params: dict[str, Any]
    # The rows' class, made from the cursor's column names at the first read.
    row: type[tuple[Any, ...]] | None = field(default=None, compare=False)


@functools.lru_cache(maxsize=TEXTS)
def _text(
    dialect: Dialect, statement: Executable, page: tuple[tuple[str, Any], ...]
) -> Text | None:
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=dialect)
    result_columns = compiled._result_columns or []  # type: ignore[attr-defined]
    if any(c.type._cached_result_processor(dialect, None) for c in result_columns):
        return None
    params = compiled.construct_params(dict(page), escape_names=True)
    # LIMIT and OFFSET written into the text (pagination.page_bound's literal_execute).
    expanded = compiled._process_parameters_for_postcompile(params)  # type: ignore[attr-defined]
    return Text(expanded.statement, dict(expanded.parameters))


def text_of(engine: Engine, statement: Executable, params: dict[str, Any]) -> Text | None:
    """`statement`'s text for `params`, compiled once: `statement` must be built once (the
    same object on every request), or the cache only fills with texts never read again."""
    return _text(engine.dialect, statement, tuple(sorted(params.items())))


def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    return collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]


def read_text(engine: Engine, text: Text) -> list[Any]:
    """The rows of `text`, read in autocommit on a connection of `engine`'s pool; the
    connection is back in the pool when this returns."""
    fairy = engine.raw_connection()
    conn: psycopg.Connection[Any] = fairy.driver_connection  # type: ignore[assignment]
    try:
        conn.autocommit = True  # back to False before checkin: the pool's other users
        try:
            with conn.cursor() as cursor:
                cursor.adapters.register_loader(JSONB_OID, JsonbLoader)
                cursor.execute(text.sql, text.params, prepare=True)
                rows = cursor.fetchall()
                row = text.row
                if row is None:
                    names = tuple(column.name for column in cursor.description or ())
                    row = text.row = _row_class(names)
        finally:
            if not conn.closed:
                conn.autocommit = False
    except psycopg.Error as error:
        raise _sqlalchemy_error(engine, fairy, text, error) from error
    finally:
        fairy.close()
    make = row._make  # type: ignore[attr-defined]
    return [make(r) for r in rows]


def _sqlalchemy_error(engine: Engine, fairy: Any, text: Text, error: psycopg.Error) -> Exception:
    """`error` as SQLAlchemy raises it for the same statement; a lost connection invalidates
    the whole pool, as SQLAlchemy's Connection does (a restarted database left every pooled
    connection dead)."""
    disconnect = engine.dialect.is_disconnect(error, fairy.dbapi_connection, None)  # type: ignore[arg-type]
    if disconnect:
        engine.pool._invalidate(fairy, error)
    wrapped: Exception = exc.DBAPIError.instance(
        text.sql,
        text.params,
        error,
        psycopg.Error,
        connection_invalidated=disconnect,
        dialect=engine.dialect,
    )
    return wrapped
