"""The RabbitMQ broker of syncd: validating consumers and publishes with a deadline.

A subclass of Dramatiq's broker because both hooks sit on its internals (and pika's),
which deserve to be kept apart from the settings-level construction that picks a broker.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer

from syncd.broker.consumer import ValidatingConsumer
from syncd.logging import get_logger, held_back_logs, replay_logs
from syncd.publish import PublishTimeout

log = get_logger(__name__)


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

    def __init__(self, *, max_delay_ms: int | None = None, **kwargs: Any) -> None:
        """`max_delay_ms`: the longest retry backoff; its consumers refuse a message whose
        eta lies further ahead (see syncd.publish.check_envelope)."""
        super().__init__(**kwargs)
        self.max_delay_ms = max_delay_ms

    @property
    def consumer_class(self) -> type[_RabbitmqConsumer]:
        return ValidatingConsumer

    def enqueue(
        self, message: dramatiq.Message[Any], *, delay: int | None = None
    ) -> dramatiq.Message[Any]:
        """Dramatiq's enqueue, without false alarms when the connection was dead.

        A thread's connection that sat idle may have been closed by RabbitMQ (missed
        heartbeats, an operator, a restart); the publish on it fails, pika logs ERROR lines
        with tracebacks, and Dramatiq retries on a new connection. When that retry succeeds
        nothing failed: one INFO line says so. pika's lines are replayed when the publish
        fails after all, or when they were about something else than a reconnect.
        """
        before = getattr(self.state, "connection", None)
        held: list[logging.LogRecord] = []
        try:
            with held_back_logs("pika") as held:
                result = super().enqueue(message, delay=delay)
        except BaseException:
            replay_logs(held)  # outside the block, which would hold them back again
            raise
        reconnected = before is not None and getattr(self.state, "connection", None) is not before
        if reconnected:
            # pika's first error, without the socket details and the traceback it appends.
            errors = [r.getMessage() for r in held if r.levelno >= logging.ERROR]
            cause = errors[0].splitlines()[0].split("; ")[0] if errors else "connection closed"
            log.info("publisher_reconnected", queue=message.queue_name, cause=cause)
        else:
            replay_logs(held)
        return result

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


def arm_deadline(connection: pika.BlockingConnection, seconds: float) -> Callable[[], None]:
    """The publish deadline on a connection of one's own (the events relay's): after
    `seconds` the connection is torn down and the waiting call raises PublishTimeout, as in
    SyncdRabbitmqBroker.enqueue_within. Returns the function that disarms it."""
    impl = connection._impl
    handle = impl._adapter_call_later(seconds, functools.partial(_expire, impl))
    return functools.partial(impl._adapter_remove_timeout, handle)


def _expire(impl: Any) -> None:
    """Deadline timer callback, run by pika's I/O loop inside the publishing thread's wait.

    As pika's own blocked-connection timeout does: abort the stream (no Close handshake with
    a peer that does not answer) and let the waiting call raise the given error. Raising
    here instead would break pika's loop ("we can't raise exceptions in callbacks").
    """
    if not impl.is_closed:
        impl._terminate_stream(PublishTimeout("RabbitMQ did not confirm the publish in time"))
