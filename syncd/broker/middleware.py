"""The middleware of every syncd broker, and the order Dramatiq runs it in.

One module so the order, which decides what every log line and retry sees, is read and
changed in one place; the worker's resources ride along as middleware so that processes
which only publish never open them.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage, Middleware, Retries, TimeLimit

from syncd.config import WORKER_RELAY_ENV, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from adapters.base import Adapter
    from syncd.events.relay import EventRelay

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
            **catalog_context(message.kwargs),
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


def catalog_context(kwargs: Any) -> dict[str, str]:
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
        # The dramatiq.Worker running on this broker in this process, while it runs.
        self.worker: Any = None

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
        self.worker = worker

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.worker = None
        self.close()


class EventsRelay(Middleware):
    """The events relay (syncd/events/relay.py) of a process that runs a worker: started
    once the worker booted, on WorkerResources' engine; stopped when the worker begins to
    shut down, before that engine is closed. A supervisor sets WORKER_RELAY_ENV=0 in all its
    children but the first: one relay per process group (`syncd worker`, `syncd run`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.relay: EventRelay | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        from syncd.events.relay import make_relay

        engine = worker_resources(broker).engine
        if engine is None or os.environ.get(WORKER_RELAY_ENV, "1") == "0":
            return
        self.relay = make_relay(self.settings, engine)
        if self.relay is not None:
            self.relay.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None


def build_middleware(settings: Settings, *, pending: Middleware | None = None) -> list[Middleware]:
    """Every middleware of a syncd broker, in order (`pending`: the in-process queue's
    PendingCommands, syncd/broker/embedded.py).

    Dramatiq calls `before_*` hooks top to bottom and `after_*` hooks bottom to top, so the
    first entry wraps all the others:

    1. LogContext: binds message_id/actor first and unbinds last, so the log events of every
       other hook (Retries' "retrying" and "retries exceeded" included) and of the actor carry
       them.
    1b. PendingCommands (in-process queue only): before Retries, so that its after-hook runs
       once Retries decided: a message Retries queued again stays pending, one it failed
       (or that succeeded) is deleted from pending_command.
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
    6. EventsRelay: publishes the events outbox while the worker runs (a thread of its own).

    Left out on purpose: AgeLimit (commands do not expire), Callbacks and Pipelines (a producer
    must not chain arbitrary actors), ShutdownNotifications (a stopping worker lets running
    commands finish within SYNCD_SHUTDOWN_TIMEOUT_SECONDS instead of interrupting them), and
    Dramatiq's Prometheus middleware (syncd.metrics has the counters operators use).
    """
    return [
        LogContext(),
        *([pending] if pending is not None else []),
        CurrentMessage(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        ),
        TimeLimit(time_limit=settings.time_limit_ms),
        WorkerResources(settings),
        EventsRelay(settings),
    ]


def worker_resources(broker: dramatiq.Broker) -> WorkerResources:
    for middleware in broker.middleware:
        if isinstance(middleware, WorkerResources):
            return middleware
    raise RuntimeError("this broker was not built by syncd.broker.make_broker")


def delayed_in_memory(broker: dramatiq.Broker | None) -> int:
    """Delayed messages (retries waiting for their backoff) that the worker running in this
    process holds in memory; 0 when none runs here.

    A Dramatiq worker takes delayed messages from `<queue>.DQ` as soon as they arrive (up to
    1000 per thread) and keeps them, unacknowledged, until they are due, when it puts them
    back on the queue. RabbitMQ's ready count (all a passive declare reports) misses them,
    and its unacknowledged count needs the management plugin, so the worker counts them.
    """
    for middleware in getattr(broker, "middleware", ()):
        if isinstance(middleware, WorkerResources) and middleware.worker is not None:
            consumers = list(middleware.worker.consumers.values())
            return sum(consumer.delay_queue.qsize() for consumer in consumers)
    return 0


def boot_process(broker: dramatiq.Broker) -> None:
    """Emit Dramatiq's process_boot once per broker (TimeLimit starts its timer thread then,
    and a thread cannot be started twice)."""
    resources = worker_resources(broker)
    if not resources.process_booted:
        broker.emit_after("process_boot")
        resources.process_booted = True
