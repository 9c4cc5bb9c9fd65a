"""Body of `syncd redrive`: dead letters back onto their queue, their retry budget restored.

Its own module because it talks to RabbitMQ directly (pika, publisher confirms), not through
Dramatiq: it must move messages it cannot decode as well as those it can.
"""

from __future__ import annotations

import argparse
import json

from syncd.cli.common import _error
from syncd.config import Settings
from syncd.errors import SyncdError, TransientError


def redrive_command(settings: Settings, args: argparse.Namespace) -> int:
    """`syncd redrive [--queue Q] [--limit N]`: move dead letters back to their queue."""
    if settings.uses_embedded_queue:
        _error("redrive needs SYNCD_BROKER_URL: the in-process queue keeps no dead letters")
        return 2
    queue = args.queue or settings.queue_name
    if args.limit is not None and args.limit < 0:
        _error("--limit must be 0 or more")
        return 2
    try:
        moved, left = redrive(settings.broker_url, queue, limit=args.limit)
    except SyncdError as exc:
        _error(exc.message)
        return 1
    print(f"moved {moved} message(s) from {queue}.XQ to {queue}; {left} left in {queue}.XQ")
    return 0


# Headers RabbitMQ adds when it dead-letters a message; they describe the old trip only.
_DEATH_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)


def _fresh_body(body: bytes, queue: str) -> bytes:
    """The dead letter's body with its retry budget restored, so that a redriven command
    gets all its retries again; bodies that are not a Dramatiq envelope move unchanged (the
    worker rejects them again, with the reason in its log)."""
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        return body
    if not isinstance(fields, dict) or not isinstance(fields.get("options"), dict):
        return body
    for key in ("retries", "traceback", "requeue_timestamp", "eta"):
        fields["options"].pop(key, None)
    # A message that died on the delay queue names it; it belongs on the queue itself.
    if fields.get("queue_name") in (f"{queue}.DQ", f"{queue}.XQ"):
        fields["queue_name"] = queue
    return json.dumps(fields, separators=(",", ":")).encode()


def redrive(broker_url: str, queue: str, *, limit: int | None = None) -> tuple[int, int]:
    """Move up to `limit` messages (all when None) from `<queue>.XQ` to `queue`.

    Each message is published persistent with a publisher confirm and only then acked on the
    dead-letter queue, so a crash in between duplicates a command (harmless: commands are
    idempotent) but never loses one. Messages are counted before the first move, so a message
    that dies again while this runs is not moved twice. Returns (moved, left in the XQ).
    """
    import pika
    import pika.exceptions

    from syncd.broker import with_url_defaults

    dead = f"{queue}.XQ"
    params = pika.URLParameters(with_url_defaults(broker_url.split(";")[0]))
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        raise TransientError(f"cannot connect to RabbitMQ: {type(exc).__name__}: {exc}") from exc
    moved = 0
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        try:
            waiting = channel.queue_declare(queue=dead, passive=True).method.message_count
            channel.queue_declare(queue=queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise SyncdError(f"queue {exc.reply_text.split(' - ')[-1]}") from exc
        budget = waiting if limit is None else min(limit, waiting)
        while moved < budget:
            method, properties, body = channel.basic_get(dead, auto_ack=False)
            if method is None:
                break
            headers = {
                k: v for k, v in (properties.headers or {}).items() if k not in _DEATH_HEADERS
            }
            try:
                channel.basic_publish(
                    exchange="",
                    routing_key=queue,
                    body=_fresh_body(body, queue),
                    properties=pika.BasicProperties(
                        delivery_mode=2,
                        content_type=properties.content_type,
                        headers=headers or None,
                    ),
                    mandatory=True,
                )
            except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:
                channel.basic_nack(method.delivery_tag, requeue=True)
                raise SyncdError(
                    f"RabbitMQ refused a message for {queue!r} ({type(exc).__name__}); "
                    f"moved {moved} before it"
                ) from exc
            channel.basic_ack(method.delivery_tag)
            moved += 1
        left = channel.queue_declare(queue=dead, passive=True).method.message_count
    except pika.exceptions.AMQPConnectionError as exc:
        raise TransientError(
            f"lost the connection to RabbitMQ after moving {moved} message(s): {exc}"
        ) from exc
    finally:
        if connection.is_open:
            connection.close()
    return moved, left
