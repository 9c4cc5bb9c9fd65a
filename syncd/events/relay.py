"""The events relay: publishes the outbox (`event_outbox`, written by syncd/events/outbox.py in
the transaction of the change each event reports) to the SYNCD_EVENTS_EXCHANGE topic exchange.

One relay per `syncd worker` process group and one in `syncd run`. Every
SYNCD_EVENTS_POLL_SECONDS it claims the unpublished rows in id order (on PostgreSQL with
`FOR UPDATE SKIP LOCKED`, so that two relays never take the same row while both are alive),
publishes each with publisher confirms and persistent delivery, and sets `published_at` in
the same transaction. Delivery is at least once: a relay killed between RabbitMQ's confirm
and its commit publishes those rows again after the restart; consumers de-duplicate by
`event_id`. A relay killed before the confirm leaves the rows unpublished, and a change that
was never committed has no row, so it never publishes anything.

While RabbitMQ (or the database) is unreachable the relay backs off, logs one line when the
outage starts and one when it ends, and never lets an error out of its thread.

On the embedded default (no SYNCD_BROKER_URL) there is no exchange: each event becomes one
`event_out` log line with its body, and the rows stay unpublished for a broker configured
later.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, delete, func, select, update

from syncd.config import Settings
from syncd.db.process_tables import EventOutbox
from syncd.logging import get_logger, held_back_logs
from syncd.metrics import EVENTS_BACKLOG, EVENTS_PUBLISH_FAILED, EVENTS_PUBLISHED
from syncd.redaction import redact_urls

log = get_logger(__name__)

BATCH = 100
# Longest wait between two tries while RabbitMQ or the database is down.
MAX_BACKOFF_SECONDS = 30.0
# Published rows are kept this long (a look back for operators), then deleted by the relay.
PUBLISHED_RETENTION = timedelta(days=7)
PRUNE_EVERY_SECONDS = 3600.0
APP_ID = "syncd"


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    event_id: uuid.UUID
    type: str
    body: dict[str, Any]


class Destination(Protocol):
    """Where the relay sends events: RabbitMQ, or the log on the embedded default."""

    # The `destination` label of the metrics.
    name: str
    # Whether a sent event is marked published (the log is no destination a consumer reads).
    marks_published: bool

    def send(self, event: OutboxEvent) -> None: ...

    def idle(self) -> None: ...

    def close(self) -> None: ...


class DestinationError(Exception):
    """Sending failed (RabbitMQ down, refused or not confirming); the row stays unpublished."""


class AmqpDestination:
    """A connection and a confirming channel of the relay's own (never the command broker's
    per-thread connections): declares the exchange (topic, durable) and publishes to it."""

    name = "rabbitmq"
    marks_published = True

    def __init__(self, broker_url: str, exchange: str, *, timeout: float = 10.0) -> None:
        """`timeout`: how long connecting, declaring or one publish's confirm may take (a
        frozen node keeps TCP open; without it the claim would wait for the heartbeat)."""
        self.urls = [u.strip() for u in broker_url.split(";") if u.strip()]
        self.exchange = exchange
        self.timeout = timeout
        self._connection: Any = None
        self._channel: Any = None

    def _open(self) -> Any:
        import pika

        from syncd.broker.construction import with_url_defaults  # here: broker imports us

        if self._channel is not None and self._channel.is_open:
            return self._channel
        self.close()
        parameters = [pika.URLParameters(with_url_defaults(url)) for url in self.urls]
        for p in parameters:
            p.connection_attempts = 1
            p.stack_timeout = self.timeout
        self._connection = pika.BlockingConnection(parameters)
        with self._deadline():
            channel = self._connection.channel()
            channel.confirm_delivery()
            channel.exchange_declare(exchange=self.exchange, exchange_type="topic", durable=True)
        self._channel = channel
        return channel

    @contextlib.contextmanager
    def _deadline(self) -> Iterator[None]:
        from syncd.broker.rabbitmq import arm_deadline  # here: broker imports us

        disarm = arm_deadline(self._connection, self.timeout)
        try:
            yield
        finally:
            disarm()

    def send(self, event: OutboxEvent) -> None:
        import pika

        try:
            # pika logs a refused connection as ERROR lines with tracebacks; the relay says
            # it once per outage instead.
            with held_back_logs("pika"):
                channel = self._open()
                with self._deadline():
                    channel.basic_publish(
                        exchange=self.exchange,
                        routing_key=event.type,
                        body=json.dumps(event.body, ensure_ascii=False).encode("utf-8"),
                        properties=pika.BasicProperties(
                            content_type="application/json",
                            content_encoding="utf-8",
                            delivery_mode=pika.DeliveryMode.Persistent,
                            message_id=event.event_id.hex,
                            type=event.type,
                            app_id=APP_ID,
                        ),
                    )
        except Exception as exc:
            self.close()
            raise DestinationError(_describe(exc)) from exc

    def idle(self) -> None:
        """Let pika answer RabbitMQ's heartbeats while the relay waits between polls."""
        if self._connection is None or not self._connection.is_open:
            return
        try:
            with held_back_logs("pika"):
                self._connection.process_data_events(time_limit=0)
        except Exception:
            self.close()  # the next send connects again, and reports the outage if any

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                with held_back_logs("pika"):
                    connection.close()
            except Exception:
                pass


class LogDestination:
    """The embedded default: one `event_out` line per event, the rows left for a broker."""

    name = "log"
    marks_published = False

    def send(self, event: OutboxEvent) -> None:
        log.info("event_out", event_type=event.type, event_id=event.event_id.hex, body=event.body)

    def idle(self) -> None:
        return None

    def close(self) -> None:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact_urls(f"{type(exc).__name__}: {text.splitlines()[0][:300]}")


def _row(r: Any) -> OutboxEvent:
    return OutboxEvent(id=r.id, event_id=r.event_id, type=r.type, body=r.body)


def relay_batch(engine: Engine, destination: Destination, *, after_id: int = 0) -> list[int]:
    """Send the oldest unpublished events (at most BATCH, ids above `after_id`) in id order;
    return the ids sent. A destination that marks published claims its rows first (`FOR
    UPDATE SKIP LOCKED`; SQLite has one writer) and marks them in the same transaction; a
    failure marks those sent before it and counts the failed one's attempt, then raises
    DestinationError."""
    query = (
        select(EventOutbox.id, EventOutbox.event_id, EventOutbox.type, EventOutbox.body)
        .where(EventOutbox.published_at.is_(None), EventOutbox.id > after_id)
        .order_by(EventOutbox.id)
        .limit(BATCH)
    )
    if not destination.marks_published:
        with engine.connect() as conn:
            events = [_row(r) for r in conn.execute(query)]
        for event in events:
            destination.send(event)
            EVENTS_PUBLISHED.labels(type=event.type, destination=destination.name).inc()
        return [e.id for e in events]
    sent: list[int] = []
    with engine.begin() as conn:
        events = [_row(r) for r in conn.execute(query.with_for_update(skip_locked=True))]
        failed: tuple[OutboxEvent, DestinationError] | None = None
        for event in events:
            try:
                destination.send(event)
            except DestinationError as exc:
                failed = (event, exc)
                break
            sent.append(event.id)
            EVENTS_PUBLISHED.labels(type=event.type, destination=destination.name).inc()
        if sent:
            conn.execute(
                update(EventOutbox)
                .where(EventOutbox.id.in_(sent))
                .values(published_at=datetime.now(UTC), attempts=EventOutbox.attempts + 1)
            )
        if failed is not None:
            conn.execute(
                update(EventOutbox)
                .where(EventOutbox.id == failed[0].id)
                .values(attempts=EventOutbox.attempts + 1)
            )
    if failed is not None:
        EVENTS_PUBLISH_FAILED.labels(type=failed[0].type, destination=destination.name).inc()
        raise failed[1]
    return sent


def backlog(engine: Engine) -> int:
    """Events not published yet (the partial index on unpublished rows answers it)."""
    with engine.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(EventOutbox).where(EventOutbox.published_at.is_(None))
        ).scalar_one()
    return int(count)


def prune_published(engine: Engine, *, now: datetime | None = None) -> int:
    """Delete rows published more than PUBLISHED_RETENTION ago; return how many."""
    cutoff = (now or datetime.now(UTC)) - PUBLISHED_RETENTION
    with engine.begin() as conn:
        result = conn.execute(delete(EventOutbox).where(EventOutbox.published_at < cutoff))
    return int(result.rowcount or 0)


class EventRelay:
    """The relay thread: `start()`, `stop()`; `run_pending()` sends everything waiting now
    (what each poll does, callable from a test)."""

    def __init__(self, engine: Engine, destination: Destination, *, poll_seconds: float) -> None:
        self.engine = engine
        self.destination = destination
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The log destination leaves rows unpublished: it starts after the events that
        # existed when the process started (a previous process logged them).
        self._after_id = 0 if destination.marks_published else _newest_id(engine)
        self._down_since: float | None = None
        self._pruned_at = -math.inf  # the first poll prunes

    def start(self) -> EventRelay:
        self._thread = threading.Thread(target=self._loop, name="events-relay", daemon=True)
        self._thread.start()
        log.info(
            "events_relay_started",
            destination=self.destination.name,
            poll_seconds=self.poll_seconds,
            pid=os.getpid(),  # which process of a worker group runs it
        )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_pending(self) -> int:
        total = 0
        while not self._stop.is_set():
            ids = relay_batch(self.engine, self.destination, after_id=self._after_id)
            total += len(ids)
            if not self.destination.marks_published and ids:
                self._after_id = ids[-1]
            if len(ids) < BATCH:
                break
        return total

    def _loop(self) -> None:
        backoff = self.poll_seconds
        try:
            while not self._stop.is_set():
                try:
                    self.run_pending()
                    self._maintain()
                except Exception as exc:
                    self._outage(exc)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                    continue
                self._recovered()
                backoff = self.poll_seconds
                self.destination.idle()
                self._stop.wait(self.poll_seconds)
        finally:
            self.destination.close()
            log.info("events_relay_stopped", destination=self.destination.name)

    def _maintain(self) -> None:
        EVENTS_BACKLOG.set(backlog(self.engine))
        due = time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS
        if self.destination.marks_published and due:
            self._pruned_at = time.monotonic()
            prune_published(self.engine)

    def _outage(self, exc: Exception) -> None:
        if self._down_since is not None:
            return  # said once per outage
        self._down_since = time.monotonic()
        what = "rabbitmq" if isinstance(exc, DestinationError) else "database"
        log.warning(
            "events_relay_waiting",
            unreachable=what,
            error=str(exc) if isinstance(exc, DestinationError) else _describe(exc),
            retry_max_seconds=MAX_BACKOFF_SECONDS,
        )

    def _recovered(self) -> None:
        if self._down_since is None:
            return
        log.info("events_relay_resumed", down_seconds=round(time.monotonic() - self._down_since, 1))
        self._down_since = None


def _newest_id(engine: Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.max(EventOutbox.id))).scalar() or 0)
    except Exception:
        return 0


def make_relay(settings: Settings, engine: Engine) -> EventRelay | None:
    """The relay this process runs: RabbitMQ with SYNCD_BROKER_URL, else the log; None when
    SYNCD_EVENTS_EXCHANGE is empty (events off)."""
    if not settings.events_exchange:
        return None
    destination: Destination = (
        LogDestination()
        if settings.uses_embedded_queue
        else AmqpDestination(
            settings.broker_url,
            settings.events_exchange,
            timeout=settings.publish_timeout_seconds,
        )
    )
    return EventRelay(engine, destination, poll_seconds=settings.events_poll_seconds)
