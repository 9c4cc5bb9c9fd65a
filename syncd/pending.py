"""Accepted, unfinished commands of the in-process queue, by message id (table
pending_command): what lets a command answered 202 by `syncd run` survive a stop.

The in-process queue lives in memory. Its broker (syncd/broker/embedded.py) writes a row here
before a command is queued, so before the API answers 202, and deletes it once the command's
last attempt ended; `syncd run` queues whatever is left when it starts again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from syncd.db.process_tables import PendingCommand


@dataclass(frozen=True)
class Pending:
    message_id: str
    actor: str
    kwargs: dict[str, Any]
    accepted_at: datetime


def remember(engine: Engine, message_id: str, actor: str, kwargs: dict[str, Any]) -> None:
    """Store an accepted command; a row already there (the same command queued again at
    start) is kept as it is. Raises when the database fails: the caller must not accept it."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    with engine.begin() as conn:
        conn.execute(
            dialect.insert(PendingCommand)
            .values(
                message_id=message_id,
                actor=actor,
                kwargs=dict(kwargs),
                accepted_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing(index_elements=["message_id"])
        )


def forget(engine: Engine, message_id: str) -> None:
    """The command is done (succeeded, or failed for good): nothing to run again."""
    with engine.begin() as conn:
        conn.execute(delete(PendingCommand).where(PendingCommand.message_id == message_id))


def list_pending(engine: Engine) -> list[Pending]:
    """Every accepted, unfinished command, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                PendingCommand.message_id,
                PendingCommand.actor,
                PendingCommand.kwargs,
                PendingCommand.accepted_at,
            ).order_by(PendingCommand.accepted_at, PendingCommand.message_id)
        ).all()
    return [
        Pending(
            message_id=row.message_id,
            actor=row.actor,
            kwargs=dict(row.kwargs or {}),
            accepted_at=row.accepted_at,
        )
        for row in rows
    ]
