"""`--wait`: follow a queued command to its final outcome and say how it ended.

Apart from the commands because it reads only what the worker writes (the outcome by message
id, the catalog rows), never the queue; the exit code it returns is the command's.
"""

from __future__ import annotations

import time
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from syncd.cli.common import _error
from syncd.db.tables import Catalog

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class _RowState:
    uuid: str
    name: str
    version: str
    catalog_type: str
    last_update_attempt: datetime | None
    last_successful_update: datetime | None
    update_errors: str
    package_count: int
    version_count: int


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every timestamp syncd writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _states(engine: Engine, where: Any) -> list[_RowState]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Catalog.uuid,
                Catalog.name,
                Catalog.version,
                Catalog.catalog_type,
                Catalog.last_update_attempt,
                Catalog.last_successful_update,
                Catalog.update_errors,
                Catalog.package_count,
                Catalog.version_count,
            ).where(where)
        ).all()
    return [
        _RowState(
            uuid=row.uuid.hex,
            name=row.name,
            version=row.version,
            catalog_type=row.catalog_type,
            last_update_attempt=_utc(row.last_update_attempt),
            last_successful_update=_utc(row.last_successful_update),
            update_errors=row.update_errors or "",
            package_count=row.package_count or 0,
            version_count=row.version_count or 0,
        )
        for row in rows
    ]


def _started_since(
    engine: Engine, where: Any, before: dict[str, datetime | None]
) -> _RowState | None:
    """A row matching `where` whose attempt started after `before` (uuid ->
    last_update_attempt read before publishing): a row that was not there, or whose
    last_update_attempt changed."""
    for state in _states(engine, where):
        if state.last_update_attempt is None:
            continue
        if state.uuid not in before or state.last_update_attempt != before[state.uuid]:
            return state
    return None


@dataclass(frozen=True)
class _Waited:
    succeeded: bool | None  # None: no final outcome within the timeout
    error: str
    row: _RowState | None  # the catalog the command worked on (or was seen working on)


def wait_for_outcome(
    engine: Engine,
    message_id: str,
    where: Any,
    before: dict[str, datetime | None],
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> _Waited:
    """Poll the command's outcome, which the worker stores by message id after each attempt,
    until it is final (succeeded, or failed with no retry left) or `timeout` passes.

    By message id rather than by catalog row: an import can fail before it has a row, and
    another attempt on the same catalog is not this command's.
    """
    from syncd.outcomes import read_outcome

    deadline = time.monotonic() + timeout
    while True:
        outcome = read_outcome(engine, message_id)
        if outcome is not None and outcome.final:
            row = None
            if outcome.catalog_uuid:
                rows = _states(engine, Catalog.uuid == uuid_module.UUID(outcome.catalog_uuid))
                row = rows[0] if rows else None
            return _Waited(outcome.succeeded, outcome.error, row)
        if time.monotonic() >= deadline:
            return _Waited(None, "", _started_since(engine, where, before))
        sleep(POLL_SECONDS)


def _report(waited: _Waited, what: str, timeout: float, queue_name: str) -> int:
    row = waited.row
    if waited.succeeded and row is not None:
        print(
            f"{what}: done, catalog {row.uuid} {row.name} {row.version} has "
            f"{row.package_count} packages, {row.version_count} versions"
        )
        return 0
    if waited.succeeded is False:
        _error(f"{what} failed: {waited.error}")
        return 1
    if row is not None:
        _error(
            f"{what}: no result after {timeout:g} s (the attempt started but has not "
            "finished); the worker's log says more."
        )
        return 1
    _error(
        f"{what}: no result after {timeout:g} s and no catalog row shows an attempt: is a "
        "`syncd worker` running? Its log (command_failed) and the dead-letter queue "
        f"{queue_name}.XQ say more."
    )
    return 1
