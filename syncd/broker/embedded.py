"""The in-process queue of `syncd run`, made to survive a stop through the database.

Dramatiq's StubBroker keeps messages in memory only: a command answered 202 and not yet run
was gone after a stop. EmbeddedBroker writes each new command into pending_command
(syncd/pending.py) before queueing it, so before the API answers; the PendingCommands
middleware deletes the row once the command's last attempt ended, and knows which commands
run right now, so that `syncd run` can tell, when it stops, which attempts the stop cut off.
`resume_pending` queues the rows left over when `syncd run` starts again.

RabbitMQ keeps unacknowledged messages itself; its brokers never carry this middleware.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware
from sqlalchemy import Engine

from syncd.broker.middleware import catalog_context
from syncd.errors import InvalidMessageError
from syncd.logging import get_logger
from syncd.pending import Pending, forget, list_pending, remember
from syncd.publish import check_kwargs

log = get_logger(__name__)


class PendingCommands(Middleware):
    """Deletes a command's pending_command row when its last attempt ended, and tracks the
    commands running now and those a stop cut off."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._cut_off: set[str] = set()
        self._stopping = False

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stopping = True

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        with self._lock:
            self._running.add(message.message_id)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            self._running.discard(message.message_id)
            if exception is not None and self._stopping:
                # Failed while the process stops: most likely because it stops (its fetcher
                # closed under it). Kept, to run again at the next start, not given up.
                self._cut_off.add(message.message_id)
                return
        if exception is not None and not message.failed:
            return  # Retries queued another attempt of it
        try:
            forget(self.engine, message.message_id)
        except Exception as exc:  # the command then runs once more at the next start
            log.warning("pending_command_not_deleted", error=str(exc).splitlines()[0])

    after_skip_message = after_process_message

    def cut_off(self) -> set[str]:
        """Message ids of the commands whose attempt the stop interrupted (still running, or
        failed while the worker stopped)."""
        with self._lock:
            return self._running | self._cut_off


class EmbeddedBroker(StubBroker):
    """The in-process broker; with a PendingCommands middleware, a durable one."""

    def enqueue(
        self, message: dramatiq.Message[Any], *, delay: int | None = None
    ) -> dramatiq.Message[Any]:
        journal = pending_commands(self)
        # A retry (queued with a delay, then again when due) carries `retries`: its row was
        # written when the command was accepted.
        if journal is not None and delay is None and "retries" not in message.options:
            # Before the message is queued: a worker may finish it (and delete the row)
            # before this method returns. A failure here fails the publish (503).
            remember(journal.engine, message.message_id, message.actor_name, message.kwargs)
        return super().enqueue(message, delay=delay)


def pending_commands(broker: dramatiq.Broker) -> PendingCommands | None:
    for middleware in broker.middleware:
        if isinstance(middleware, PendingCommands):
            return middleware
    return None


@dataclass(frozen=True)
class Unfinished:
    command: Pending
    cut_off: bool  # its attempt was running when the process stopped


def unfinished(broker: dramatiq.Broker) -> list[Unfinished]:
    """The commands accepted and not finished, when the worker has stopped; [] for a broker
    without PendingCommands (RabbitMQ keeps those itself)."""
    journal = pending_commands(broker)
    if journal is None:
        return []
    cut_off = journal.cut_off()
    return [Unfinished(c, c.message_id in cut_off) for c in list_pending(journal.engine)]


def resume_pending(broker: dramatiq.Broker, queue_name: str) -> list[Pending]:
    """Queue again, under their own message ids, the commands a previous run accepted and
    did not finish; one `command_resumed` line each."""
    journal = pending_commands(broker)
    if journal is None:
        return []
    resumed = []
    for command in list_pending(journal.engine):
        context = {"message_id": command.message_id, "actor": command.actor}
        try:
            check_kwargs(command.actor, command.kwargs)
        except InvalidMessageError as exc:  # written by another syncd version's contract
            log.warning("pending_command_dropped", **context, reason=str(exc))
            forget(journal.engine, command.message_id)
            continue
        accepted = command.accepted_at
        if accepted.tzinfo is None:  # SQLite hands back naive UTC
            accepted = accepted.replace(tzinfo=UTC)
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue_name,
            actor_name=command.actor,
            args=(),
            kwargs=command.kwargs,
            options={},
            message_id=command.message_id,
            message_timestamp=int(accepted.timestamp() * 1000),
        )
        broker.enqueue(message)
        log.info(
            "command_resumed",
            **context,
            **catalog_context(command.kwargs),
            accepted_at=accepted.isoformat(),
        )
        resumed.append(command)
    return resumed
