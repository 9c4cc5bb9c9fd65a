"""The consumer side: a delivery the worker cannot run is dead-lettered before Dramatiq.

Separate from the broker so the message contract check (`decode_message`) and the one log
line per rejected message stay together, whatever the broker does with its connections.
"""

from __future__ import annotations

import json
from typing import Any

import pika
import pika.exceptions
from dramatiq.brokers.rabbitmq import _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.common import q_name, xq_name
from dramatiq.errors import ConnectionClosed

from syncd.errors import InvalidMessageError
from syncd.logging import get_logger
from syncd.metrics import COMMANDS_FAILED, INVALID_ACTOR, UNKNOWN_CATALOG
from syncd.publish import ACTOR_KWARGS, decode_message

log = get_logger(__name__)


class ValidatingConsumer(_RabbitmqConsumer):
    """A RabbitMQ consumer that dead-letters a delivery the worker cannot run.

    Dramatiq 2.x decodes in `_RabbitmqConsumer.__next__` (garbage is nacked with a traceback)
    and looks the actor up later in ConsumerThread.handle_message (unknown actors are nacked
    with another traceback); wrong kwargs or a foreign queue_name would only fail inside a
    worker thread, or crash its bookkeeping. Checking here, before Dramatiq sees the message,
    gives one log line with the reason for every kind of bad message; the nack (requeue=False)
    sends it to the queue's dead-letter queue `<queue>.XQ`, and the worker goes on.
    """

    def __next__(self) -> _RabbitmqMessage | None:
        try:
            method, properties, body = next(self.iterator)
            if method is None:
                return None
        except (
            AssertionError,
            pika.exceptions.AMQPConnectionError,
            pika.exceptions.AMQPChannelError,
        ) as e:
            # As in Dramatiq: a vanished queue is redeclared when the consumer restarts.
            if getattr(e, "reply_code", None) == 404:
                self.broker.queues_pending.add(q_name(self.queue_name))
            raise ConnectionClosed(e) from None

        try:
            message = decode_message(
                body,
                queue_name=self.queue_name,
                max_delay_ms=getattr(self.broker, "max_delay_ms", None),
            )
        except InvalidMessageError as exc:
            self._reject(method, properties, body, exc.message)
            return None

        self.known_tags.add(method.delivery_tag)
        return _RabbitmqMessage(method.redelivered, method.delivery_tag, message)

    def _reject(self, method: Any, properties: Any, body: bytes, reason: str) -> None:
        actor, message_id = _peek(body)
        log_rejected(
            self.queue_name,
            actor,
            message_id,
            reason,
            error="InvalidMessageError",
            body_bytes=len(body),
            redelivered=bool(method.redelivered),
        )
        self._nack(method.delivery_tag)


def log_rejected(
    queue: str,
    actor: str | None,
    message_id: str | None,
    reason: str,
    *,
    error: str,
    **fields: Any,
) -> None:
    """The one log line (and failure count) of a message sent to the dead-letter queue
    without running: invalid here, a poison message in the worker (syncd.worker)."""
    log.warning(
        "message_rejected",
        reason=reason,
        queue=queue,
        dead_letter_queue=xq_name(queue),
        actor=actor,
        message_id=message_id,
        **fields,
    )
    # Labels from a fixed set only: a producer's arbitrary actor names would each make a
    # series (and a lone surrogate in one would break every later /metrics scrape).
    COMMANDS_FAILED.labels(
        actor=actor if actor in ACTOR_KWARGS else INVALID_ACTOR,
        catalog=UNKNOWN_CATALOG,
        error=error,
        will_retry="false",
    ).inc()


def _peek(body: bytes) -> tuple[str | None, str | None]:
    """actor_name and message_id of a rejected body, when it has them (for the log line)."""
    if len(body) > 65536:
        return None, None
    try:
        fields = json.loads(body)
    except Exception:
        return None, None
    if not isinstance(fields, dict):
        return None, None
    actor, message_id = fields.get("actor_name"), fields.get("message_id")
    return (
        actor if isinstance(actor, str) else None,
        message_id if isinstance(message_id, str) else None,
    )
