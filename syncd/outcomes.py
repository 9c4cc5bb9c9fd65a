"""Command outcomes by message id: written by the worker after each attempt, read by
`syncd import|update --wait` (syncd/cli/waiting.py).

Following the catalog row alone cannot tell an import that failed before it had a row
(upstream unreachable while asking for its latest version), nor this command's attempt
from another one on the same catalog; the message id can.
"""

from __future__ import annotations

import uuid as uuid_module
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select

from syncd.db.process_tables import CommandOutcome
from syncd.logging import get_logger

# Long enough for any `--wait`; short enough that the table stays small without a job.
RETENTION = timedelta(days=7)
MAX_ERROR_CHARS = 4000

log = get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    final: bool  # False: Dramatiq retries the command, another attempt follows
    error: str
    catalog_uuid: str | None  # hex; the catalog the attempt worked on, when it had one


def record_outcome(
    engine: Engine,
    message_id: str,
    actor: str,
    *,
    succeeded: bool,
    final: bool,
    error: str = "",
    catalog_uuid: str | None = None,
) -> None:
    """Store the attempt's outcome (replacing an earlier attempt's) and drop old ones. Never
    raises: the command's own result is what the worker must act on."""
    finished = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            conn.execute(delete(CommandOutcome).where(CommandOutcome.message_id == message_id))
            conn.execute(
                insert(CommandOutcome).values(
                    message_id=message_id,
                    actor=actor,
                    succeeded=succeeded,
                    final=final,
                    error=error[:MAX_ERROR_CHARS],
                    catalog_uuid=uuid_module.UUID(catalog_uuid) if catalog_uuid else None,
                    finished_at=finished,
                )
            )
            conn.execute(
                delete(CommandOutcome).where(CommandOutcome.finished_at < finished - RETENTION)
            )
    except Exception as exc:  # the database may be what failed the command
        log.warning("command_outcome_not_written", error=str(exc).splitlines()[0])


def read_outcome(engine: Engine, message_id: str) -> Outcome | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(
                CommandOutcome.succeeded,
                CommandOutcome.final,
                CommandOutcome.error,
                CommandOutcome.catalog_uuid,
            ).where(CommandOutcome.message_id == message_id)
        ).first()
    if row is None:
        return None
    return Outcome(
        succeeded=row.succeeded,
        final=row.final,
        error=row.error,
        catalog_uuid=row.catalog_uuid.hex if row.catalog_uuid else None,
    )
