"""How many times a message's worker died while running it, by message id: what stops a
poison message (one that kills every worker that takes it: out of memory, a crash in a C
library) from being redelivered for ever.

Dramatiq's retry count never moves when the process dies (the retry is published by the
dying process, which never gets to it), and a classic queue counts nothing. RabbitMQ marks a
delivery `redelivered` when an earlier delivery of it was never answered, so the worker
counts only those here: a first delivery, the common case, costs no query.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from syncd.db.process_tables import MessageDelivery

# Redeliveries of one message follow each other within minutes; a week keeps the table small
# without a job, as for command_outcome.
RETENTION = timedelta(days=7)


def count_death(engine: Engine, message_id: str) -> int:
    """Count one more death of the worker that ran `message_id` (called for a redelivered
    delivery); return how many there have been. Drops rows older than RETENTION."""
    seen = datetime.now(UTC)
    where = MessageDelivery.message_id == message_id
    with engine.begin() as conn:
        # RabbitMQ hands a message to one consumer at a time, so no other writer races this.
        updated = conn.execute(
            update(MessageDelivery)
            .where(where)
            .values(deaths=MessageDelivery.deaths + 1, last_seen_at=seen)
        )
        if updated.rowcount == 0:
            conn.execute(
                insert(MessageDelivery).values(message_id=message_id, deaths=1, last_seen_at=seen)
            )
        deaths = int(conn.execute(select(MessageDelivery.deaths).where(where)).scalar_one())
        conn.execute(delete(MessageDelivery).where(MessageDelivery.last_seen_at < seen - RETENTION))
    return deaths


def forget_deaths(engine: Engine, message_id: str) -> None:
    """Start counting afresh: a dead-lettered message that `syncd redrive` moves back gets
    its full budget again, as its retries do."""
    with engine.begin() as conn:
        conn.execute(delete(MessageDelivery).where(MessageDelivery.message_id == message_id))
