"""The Dramatiq broker of every syncd process, built in one place.

`make_broker(settings)` returns a RabbitmqBroker for SYNCD_BROKER_URL (publisher confirms and
heartbeats on; syncd's publishes bounded by SYNCD_PUBLISH_TIMEOUT_SECONDS) or, for the
embedded default (no broker URL), an in-process StubBroker that `syncd run` shares between its
API, scheduler and worker. Building a broker connects to nothing: the API starts while
RabbitMQ is down and publishing then fails with a clear error.

The middleware list and its order live in `build_middleware` only. Worker resources (engine,
adapters, fetcher) are a middleware too, as in Polar's server/: they are built when a worker
boots and closed when it stops, so processes that only publish never open them.

Actors are declared by syncd.worker.declare_actors; publishing needs none (syncd.publish).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

import dramatiq
import pika
import pika.exceptions
import structlog
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import q_name, xq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import CurrentMessage, Middleware, Retries, TimeLimit

from syncd.config import Settings, check_positive_seconds, env_name
from syncd.errors import InvalidMessageError
from syncd.logging import get_logger
from syncd.metrics import COMMANDS_FAILED
from syncd.publish import PublishTimeout, decode_message

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from adapters.base import Adapter

log = get_logger(__name__)

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


# The catalog fields a message names, bound beside its id (see LogContext).
CATALOG_CONTEXT = ("catalog_uuid", "catalog_name", "catalog_version")


class LogContext(Middleware):
    """Binds the message's id, actor, retry count and the catalog it names to structlog's
    context for the time the actor runs, so that every event of the service carries them,
    and so do Dramatiq's own lines about the message ("Retrying message ...")."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id,
            actor=message.actor_name,
            retries=message.options.get("retries", 0),
            **_catalog_context(message.kwargs),
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.unbind_contextvars("message_id", "actor", "retries", *CATALOG_CONTEXT)

    after_skip_message = after_process_message


def _catalog_context(kwargs: Any) -> dict[str, str]:
    """catalog_uuid (as the service logs it: 32 hex digits) of an update, catalog_name and
    catalog_version of an import; {} for what a message does not say."""
    if not isinstance(kwargs, dict):
        return {}
    found: dict[str, str] = {}
    catalog_uuid = kwargs.get("catalog_uuid")
    if isinstance(catalog_uuid, str):
        try:
            found["catalog_uuid"] = uuid.UUID(catalog_uuid.strip()).hex
        except ValueError:
            found["catalog_uuid"] = catalog_uuid
    for key, field in (("name", "catalog_name"), ("version", "catalog_version")):
        if isinstance(kwargs.get(key), str):
            found[field] = kwargs[key]
    return found


class WorkerResources(Middleware):
    """The database engine, adapters and HTTP fetcher that actors use.

    Built before the worker boots (unless provided, e.g. `syncd run` passes its own engine)
    and closed after it shut down. One set per process: the engine's pool and the fetcher's
    client are shared by the worker's threads.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: Engine | None = None
        self.adapters: dict[str, Adapter] | None = None
        self.fetcher: Any = None
        self._owned: list[str] = []
        self.process_booted = False

    def provide(
        self,
        *,
        engine: Engine | None = None,
        adapters: dict[str, Adapter] | None = None,
        fetcher: Any = None,
    ) -> None:
        if engine is not None:
            self.engine = engine
        if adapters is not None:
            self.adapters = adapters
        if fetcher is not None:
            self.fetcher = fetcher

    def open(self) -> None:
        """Build whatever was not provided (idempotent)."""
        if self.engine is None:
            from syncd.db.engine import make_engine

            self.engine = make_engine(self.settings.database_url)
            self._owned.append("engine")
        if self.adapters is None:
            from adapters.base import load_adapters

            self.adapters = load_adapters(self.settings)
        if self.fetcher is None:
            from adapters.fetch import Fetcher

            self.fetcher = Fetcher(self.settings)
            self._owned.append("fetcher")

    def close(self) -> None:
        """Close what this middleware built; provided resources belong to their owner."""
        if "fetcher" in self._owned and self.fetcher is not None:
            close = getattr(self.fetcher, "close", None)
            if callable(close):
                close()
            self.fetcher = None
        if "engine" in self._owned and self.engine is not None:
            self.engine.dispose()
            self.engine = None
        self._owned.clear()

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.open()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.close()


def build_middleware(settings: Settings) -> list[Middleware]:
    """Every middleware of a syncd broker, in order.

    Dramatiq calls `before_*` hooks top to bottom and `after_*` hooks bottom to top, so the
    first entry wraps all the others:

    1. LogContext: binds message_id/actor first and unbinds last, so the log events of every
       other hook (Retries' "retrying" and "retries exceeded" included) and of the actor carry
       them.
    2. CurrentMessage: the actor reads the message's retry count (is this the last attempt?)
       to say in update_errors whether the failure will be retried.
    3. Retries: capped exponential backoff between SYNCD_MIN_BACKOFF_MS and
       SYNCD_MAX_BACKOFF_MS, at most SYNCD_MAX_RETRIES times; the actors raise dramatiq.Retry
       for transient failures and PermanentFailure (their `throws`) for the others, which
       Retries dead-letters at once.
    4. TimeLimit: interrupts an actor after SYNCD_TIME_LIMIT_MS (below RabbitMQ's
       consumer_timeout, see check_queue_settings). After Retries in this list so that its
       after-hook disarms the deadline before Retries publishes the retry: the interrupt
       cannot land inside that publish. (Dramatiq's default list has them the other way.)
    5. WorkerResources: engine, adapters and fetcher. Opened before the worker threads start
       and closed by after_worker_shutdown, which Worker.stop emits once its threads and
       consumers have stopped (or the shutdown timeout has passed, and the process exits).

    Left out on purpose: AgeLimit (commands do not expire), Callbacks and Pipelines (a producer
    must not chain arbitrary actors), ShutdownNotifications (a stopping worker lets running
    commands finish within SYNCD_SHUTDOWN_TIMEOUT_SECONDS instead of interrupting them), and
    Dramatiq's Prometheus middleware (syncd.metrics has the counters operators use).
    """
    return [
        LogContext(),
        CurrentMessage(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        ),
        TimeLimit(time_limit=settings.time_limit_ms),
        WorkerResources(settings),
    ]


def make_broker(settings: Settings) -> dramatiq.Broker:
    """The broker for SYNCD_BROKER_URL, or the in-process one when it is empty."""
    check_queue_settings(settings)
    middleware = build_middleware(settings)
    broker: dramatiq.Broker
    if settings.uses_embedded_queue:
        broker = StubBroker(middleware=middleware)
    else:
        broker = SyncdRabbitmqBroker(
            url=with_url_defaults(settings.broker_url),
            confirm_delivery=True,
            middleware=middleware,
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


def worker_resources(broker: dramatiq.Broker) -> WorkerResources:
    for middleware in broker.middleware:
        if isinstance(middleware, WorkerResources):
            return middleware
    raise RuntimeError("this broker was not built by syncd.broker.make_broker")


def boot_process(broker: dramatiq.Broker) -> None:
    """Emit Dramatiq's process_boot once per broker (TimeLimit starts its timer thread then,
    and a thread cannot be started twice)."""
    resources = worker_resources(broker)
    if not resources.process_booted:
        broker.emit_after("process_boot")
        resources.process_booted = True


class SyncdRabbitmqBroker(RabbitmqBroker):
    """RabbitmqBroker whose consumers check every delivery against the message contract, and
    whose publishes can be given a deadline (`enqueue_within`).

    Why a deadline: a broker that stops answering without closing TCP (a frozen node, a
    partition) leaves Dramatiq's enqueue waiting for the publisher confirm until pika's
    heartbeat declares the peer dead and the reconnect then waits out pika's stack_timeout
    (15 s) in the AMQP handshake: 85 s measured with SIGSTOP. Clients and load balancers give
    up long before.

    How: the same way pika implements blocked_connection_timeout. A timer on the connection's
    own I/O loop fires inside whatever wait the publishing thread is in (handshake aside: that
    one is bounded by a stack_timeout clamped to the time left) and tears the socket down
    with PublishTimeout; pika then raises that exception from the wait. Nothing runs on
    another thread: the confirmed case pays one timer per publish and no thread hop, and the
    connection that timed out is already closed, so no later publish can reuse it (Dramatiq
    keeps a connection per thread; the next publish of this thread opens a new one, and other
    threads' connections each get their own deadline). A polite Connection.Close would wait
    for the dead peer too, so the socket is aborted instead.
    """

    @property
    def consumer_class(self) -> type[_RabbitmqConsumer]:
        return ValidatingConsumer

    def enqueue_within(
        self, message: dramatiq.Message[Any], timeout: float
    ) -> dramatiq.Message[Any]:
        """`enqueue`, abandoned with PublishTimeout when it has not finished within `timeout`
        seconds: connecting, declaring the queue, publishing and the confirm all count."""
        state = self.state
        state.deadline = time.monotonic() + timeout
        state.deadline_timers = []
        try:
            connection = getattr(state, "connection", None)
            if connection is not None and connection.is_open:
                self._arm_deadline(connection, timeout)
            return self.enqueue(message)
        except Exception as exc:
            left = self._time_left()
            if not isinstance(exc, PublishTimeout) and left is not None and left > 0:
                raise  # failed by itself, before the deadline
            # The timer closed the connection, or the handshake of a new one ran out of time
            # (pika raises its own AMQPConnectorStackTimeout then): forget the connection and
            # its channel so that the next publish of this thread connects afresh.
            del self.connection
            if isinstance(exc, PublishTimeout):
                raise
            raise PublishTimeout("RabbitMQ did not confirm the publish in time") from exc
        finally:
            self._disarm_deadline()
            state.deadline = None
            state.deadline_timers = []

    def _open_connection(self) -> pika.BlockingConnection:
        """Dramatiq's `connection` getter, deadline-aware: the thread's connection, opened
        on first use; within `enqueue_within` the handshake gets only the time left, and
        a new connection (Dramatiq reconnects after errors) gets the deadline timer too."""
        connection = getattr(self.state, "connection", None)
        if connection is None:
            left = self._time_left()
            if left is not None and left <= 0:
                # Raised here, Dramatiq's retry loops stop instead of connecting again.
                raise PublishTimeout("RabbitMQ did not confirm the publish in time")
            parameters = self.parameters if left is None else self._clamped_parameters(left)
            connection = pika.BlockingConnection(parameters=parameters)
            self.state.connection = connection
            self.connections.add(connection)
            left = self._time_left()
            if left is not None:
                self._arm_deadline(connection, max(left, 0.0))
        return connection

    connection = property(_open_connection, fdel=RabbitmqBroker.connection.fdel)  # type: ignore[assignment,attr-defined]

    def _time_left(self) -> float | None:
        """Seconds left before this thread's publish deadline; None outside enqueue_within."""
        deadline: float | None = getattr(self.state, "deadline", None)
        return None if deadline is None else deadline - time.monotonic()

    def _clamped_parameters(self, timeout: float) -> Any:
        """The connection parameters with the handshake bounded by `timeout` seconds in all
        (pika tries the URLs of a multi-URL SYNCD_BROKER_URL one after the other)."""
        many = self.parameters if isinstance(self.parameters, list) else [self.parameters]
        share = timeout / len(many)
        clamped = []
        for parameters in many:
            parameters = copy.copy(parameters)
            parameters.stack_timeout = min(parameters.stack_timeout or math.inf, share)
            clamped.append(parameters)
        return clamped

    def _arm_deadline(self, connection: pika.BlockingConnection, seconds: float) -> None:
        impl = connection._impl  # pika's SelectConnection, whose I/O loop the waits run
        handle = impl._adapter_call_later(seconds, functools.partial(_expire, impl))
        self.state.deadline_timers.append((impl, handle))

    def _disarm_deadline(self) -> None:
        for impl, handle in getattr(self.state, "deadline_timers", ()):
            impl._adapter_remove_timeout(handle)


def _expire(impl: Any) -> None:
    """Deadline timer callback, run by pika's I/O loop inside the publishing thread's wait.

    As pika's own blocked-connection timeout does: abort the stream (no Close handshake with
    a peer that does not answer) and let the waiting call raise the given error. Raising
    here instead would break pika's loop ("we can't raise exceptions in callbacks").
    """
    if not impl.is_closed:
        impl._terminate_stream(PublishTimeout("RabbitMQ did not confirm the publish in time"))


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
            message = decode_message(body, queue_name=self.queue_name)
        except InvalidMessageError as exc:
            self._reject(method, properties, body, exc.message)
            return None

        self.known_tags.add(method.delivery_tag)
        return _RabbitmqMessage(method.redelivered, method.delivery_tag, message)

    def _reject(self, method: Any, properties: Any, body: bytes, reason: str) -> None:
        actor, message_id = _peek(body)
        log.warning(
            "message_rejected",
            reason=reason,
            queue=self.queue_name,
            dead_letter_queue=xq_name(self.queue_name),
            actor=actor,
            message_id=message_id,
            body_bytes=len(body),
            redelivered=bool(method.redelivered),
        )
        COMMANDS_FAILED.labels(
            actor=actor or "unknown", catalog="", error="InvalidMessageError", will_retry="false"
        ).inc()
        self._nack(method.delivery_tag)


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
