"""Publishing a tick's updates and stamping them as pending.

Shared by the due pass and follow upstream, so that both stop at the same broker failure
and leave the same `update_enqueued_at` trail that keeps later ticks from enqueuing twice.
"""

from __future__ import annotations

import uuid as uuid_module
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, update

from syncd.config import Settings
from syncd.db.tables import Catalog
from syncd.metrics import SCHEDULER_SKIPPED
from syncd.scheduler.results import REASON_PUBLISH_FAILED, CatalogRef, TickResult

if TYPE_CHECKING:
    import dramatiq


def _mark_enqueued(engine: Engine, catalog_uuid: str, now: datetime) -> None:
    """Record a confirmed enqueue, stamped with the tick's time.

    After the publish, not before: a tick that dies between the two costs one duplicate
    message next tick, whereas a stamp without a message would leave the catalog waiting a
    whole interval for an update nobody enqueued. The tick's time (not the clock after the
    publish) keeps the stamp earlier than the attempt of a worker that starts the message
    before this write commits. A failing write fails the tick like a leader dying mid-tick:
    the catalogs it did not reach go out next tick. `modified` is kept as it is: this
    bookkeeping is not a change an API client could see.
    """
    with engine.begin() as conn:
        conn.execute(
            update(Catalog)
            .where(Catalog.uuid == uuid_module.UUID(catalog_uuid))
            .values(update_enqueued_at=now, modified=Catalog.modified)
        )


def forget_enqueued(engine: Engine) -> None:
    """Clear every catalog's pending enqueue (its message cannot exist any more)."""
    with engine.begin() as conn:
        conn.execute(
            update(Catalog)
            .where(Catalog.update_enqueued_at.is_not(None))
            .values(update_enqueued_at=None, modified=Catalog.modified)
        )


def _skip(result: TickResult, ref: CatalogRef, reason: str, detail: str | None = None) -> None:
    """Record why the tick leaves `ref` alone; the metric counts the reason without detail
    (an exception's text would make a new series per failure)."""
    result.skipped.append((ref, reason if detail is None else f"{reason}: {detail}"))
    SCHEDULER_SKIPPED.labels(reason=reason).inc()


def _publish(
    broker: dramatiq.Broker, settings: Settings, ref: CatalogRef, result: TickResult
) -> bool:
    """Publish update_catalog for `ref`; False (and the reason recorded) when it failed."""
    from syncd.publish import publish_update

    try:
        publish_update(broker, settings, catalog_uuid=ref.uuid, trigger="scheduler")
    except Exception as exc:
        _skip(result, ref, REASON_PUBLISH_FAILED, str(exc))
        if _broker_unavailable(exc):
            result.broker_unavailable = True
        return False
    return True


def _broker_unavailable(exc: Exception) -> bool:
    """Whether a failed publish says the broker is out of reach, not that this message failed.

    Out of reach: no confirm within the deadline (PublishTimeout), or no connection at all
    (refused, lost, authentication: pika's AMQPConnectionError, which Dramatiq wraps in its
    ConnectionClosed after its own reconnect attempts; a bare socket error). Every later
    publish of the tick would fail the same way, after the same wait. Anything else goes on
    to the next catalog: a message that cannot be built, a middleware refusing it, or the
    broker answering this publish with a nack, "unroutable" or a channel error. There the
    broker did answer, so the next publish costs milliseconds and may well succeed.
    """
    from dramatiq.errors import ConnectionClosed
    from pika.exceptions import AMQPConnectionError

    from syncd.publish import PublishTimeout

    cause = exc.__cause__
    if isinstance(cause, ConnectionClosed):
        cause = cause.message  # the pika error Dramatiq gave up on
    return isinstance(cause, PublishTimeout | AMQPConnectionError | OSError)
