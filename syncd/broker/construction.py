"""Building the broker each kind of process needs, from the settings, in one place.

Every process goes through here so that queue settings are checked once, the URL gets the
same connection defaults, and a process without a worker cannot silently queue commands.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine

from syncd.broker.embedded import EmbeddedBroker, PendingCommands
from syncd.broker.middleware import build_middleware
from syncd.broker.rabbitmq import SyncdRabbitmqBroker
from syncd.config import Settings, check_positive_seconds, env_name

# RabbitMQ's default consumer_timeout: a delivery left unacked longer than this closes the
# channel and is redelivered. Dramatiq holds a running message, and a retried message waiting
# for its eta, unacked; so the time limit and the largest backoff must both stay below it.
RABBITMQ_CONSUMER_TIMEOUT_MS = 30 * 60 * 1000

# Connection parameters added to SYNCD_BROKER_URL unless the URL sets them itself.
# heartbeat: a dead peer is noticed within about a minute instead of at the next TCP timeout.
# blocked_connection_timeout: a publish that RabbitMQ blocks (memory/disk alarm) fails after
# 30 s instead of hanging forever (syncd's own publishes give up sooner, after
# SYNCD_PUBLISH_TIMEOUT_SECONDS: SyncdRabbitmqBroker.enqueue_within). socket_timeout: connect
# timeout.
URL_DEFAULTS = {"heartbeat": "30", "blocked_connection_timeout": "30", "socket_timeout": "5"}


def with_url_defaults(url: str) -> str:
    """`url` with URL_DEFAULTS added to its query (one URL, or several joined by ';')."""
    if ";" in url:
        return ";".join(with_url_defaults(u) for u in url.split(";") if u.strip())
    parts = urllib.parse.urlsplit(url.strip())
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    for key, value in URL_DEFAULTS.items():
        query.setdefault(key, value)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def check_queue_settings(settings: Settings) -> None:
    """ValueError naming the variable when the retry/time-limit settings cannot work."""
    limit = RABBITMQ_CONSUMER_TIMEOUT_MS
    try:
        check_positive_seconds(settings.publish_timeout_seconds)
    except ValueError as exc:
        raise ValueError(f"{env_name('publish_timeout_seconds')} {exc}") from None
    if settings.max_retries < 0:
        raise ValueError(f"{env_name('max_retries')} must be 0 or more")
    if settings.delivery_limit < 0:
        raise ValueError(f"{env_name('delivery_limit')} must be 0 or more")
    if not 0 < settings.min_backoff_ms <= settings.max_backoff_ms:
        raise ValueError(
            f"{env_name('min_backoff_ms')} must be positive and at most "
            f"{env_name('max_backoff_ms')}"
        )
    for name in ("max_backoff_ms", "time_limit_ms"):
        if not 0 < getattr(settings, name) < limit:
            raise ValueError(
                f"{env_name(name)} must be below RabbitMQ's consumer_timeout ({limit} ms): "
                "a delivery held unacked longer is taken back and redelivered"
            )


def make_broker(settings: Settings, *, engine: Engine | None = None) -> dramatiq.Broker:
    """The broker for SYNCD_BROKER_URL, or the in-process one when it is empty.

    `engine` (the in-process queue only; `syncd run` passes its own) keeps the in-process
    queue's accepted commands in the database until they are done (syncd/broker/embedded.py);
    without it they live in memory only.
    """
    check_queue_settings(settings)
    broker: dramatiq.Broker
    if settings.uses_embedded_queue:
        pending = PendingCommands(engine) if engine is not None else None
        broker = EmbeddedBroker(middleware=build_middleware(settings, pending=pending))
    else:
        broker = SyncdRabbitmqBroker(
            url=with_url_defaults(settings.broker_url),
            confirm_delivery=True,
            middleware=build_middleware(settings),
        )
    # Declared now so that publishing works before any actor is declared (StubBroker refuses
    # undeclared queues; RabbitmqBroker declares on the server at the first publish).
    broker.declare_queue(settings.queue_name)
    return broker


class NoQueueBroker(StubBroker):
    """The broker of `syncd api` when SYNCD_BROKER_URL is empty.

    An in-process queue in a process that runs no worker would accept commands that nothing
    ever takes (and lose them at exit), so publishing fails instead: the API answers 503
    saying what to configure, and keeps serving reads.
    """

    def enqueue(
        self, message: dramatiq.Message[Any], *, delay: int | None = None
    ) -> dramatiq.Message[Any]:
        raise RuntimeError(
            "SYNCD_BROKER_URL is empty, so this `syncd api` has no queue and no worker to run "
            "commands (the in-process queue only exists inside `syncd run`); set "
            "SYNCD_BROKER_URL to RabbitMQ"
        )


def needs_broker_url(command: str) -> str:
    """Why `syncd <command>` refuses to start on the embedded default."""
    return (
        f"syncd: `syncd {command}` needs SYNCD_BROKER_URL (amqp://...); the embedded "
        "in-process queue only exists inside `syncd run`."
    )


def make_publisher_broker(settings: Settings) -> dramatiq.Broker:
    """The broker of a process that publishes but runs no worker (`syncd api`)."""
    if settings.uses_embedded_queue:
        return NoQueueBroker(middleware=[])
    return make_broker(settings)


def close_at_shutdown(broker: dramatiq.Broker) -> None:
    """Close the broker's connections when the process stops, without pika's false alarms.

    A thread's connection that sat idle (the one that declared the queues at start-up, a
    worker thread's after a retry) misses its heartbeats and RabbitMQ drops it; closing it
    then makes pika log several ERROR lines and a traceback, which at shutdown mean nothing
    and would wake anyone alerting on error-level logs.
    """
    pika_logger = logging.getLogger("pika")
    previous = pika_logger.level
    pika_logger.setLevel(logging.CRITICAL)
    try:
        broker.close()
    finally:
        pika_logger.setLevel(previous)
