"""Plain-pika helpers for the worker tests: publish raw bodies, count and read queues."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pika


def envelope(queue: str, actor: str, **kwargs: Any) -> dict[str, Any]:
    return {
        "queue_name": queue,
        "actor_name": actor,
        "args": [],
        "kwargs": kwargs,
        "options": {},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": int(time.time() * 1000),
    }


def publish_raw(url: str, queue: str, *bodies: bytes | dict[str, Any]) -> None:
    """Publish bodies (bytes as they are, dicts as JSON) persistent, with confirms."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for body in bodies:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            channel.basic_publish(
                exchange="",
                routing_key=queue,
                body=data,
                properties=pika.BasicProperties(delivery_mode=2),
                mandatory=True,
            )
    finally:
        connection.close()


def message_count(url: str, queue: str) -> int:
    """Ready messages in `queue` (-1 if it does not exist)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        try:
            return int(channel.queue_declare(queue=queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker:
            return -1
    finally:
        if connection.is_open:
            connection.close()


def peek_all(url: str, queue: str) -> list[bytes]:
    """The bodies waiting in `queue`, left in place (got and requeued)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    bodies: list[bytes] = []
    try:
        channel = connection.channel()
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            bodies.append(body)
        # Closing without acks puts every message back.
    finally:
        connection.close()
    return bodies


def declare_worker_queue(url: str, queue: str) -> None:
    """Declare `queue` as a syncd worker would (dead-lettering into `<queue>.XQ`)."""
    from syncd.broker import make_broker
    from syncd.config import Settings

    broker = make_broker(Settings(broker_url=url, queue_name=queue))
    try:
        broker.declare_queue(queue, ensure=True)  # type: ignore[call-arg]
    finally:
        broker.close()
