"""Inspecting the dead-letter queue, for the worker's gauge and the operators' commands.

A short-lived connection of its own: asking must work from any process and must not
disturb the broker's per-thread connections.
"""

from __future__ import annotations

import pika
import pika.exceptions
from dramatiq.common import xq_name

from syncd.broker.construction import with_url_defaults
from syncd.config import Settings


def dead_letter_count(settings: Settings, queue_name: str | None = None) -> int | None:
    """Messages waiting in `<queue>.XQ`, or None when it cannot be asked (no RabbitMQ)."""
    if settings.uses_embedded_queue:
        return None
    queue = xq_name(queue_name or settings.queue_name)
    params = pika.URLParameters(with_url_defaults(settings.broker_url.split(";")[0]))
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError:
        return None
    try:
        channel = connection.channel()
        result = channel.queue_declare(queue=queue, passive=True)
        return int(result.method.message_count)
    except pika.exceptions.AMQPError:
        return None
    finally:
        if connection.is_open:
            connection.close()
