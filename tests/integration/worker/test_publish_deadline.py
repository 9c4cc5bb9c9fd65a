"""Publishing gives up after SYNCD_PUBLISH_TIMEOUT_SECONDS when RabbitMQ stops answering.

The broker is reached through a TCP proxy of the test's own that can freeze: it keeps every
connection open and accepts new ones, but forwards nothing until thawed, which is what a
stopped RabbitMQ process or a partition looks like from the client. (The reliability suite
freezes a real, private RabbitMQ node with SIGSTOP: tests/reliability/test_rabbitmq_freeze.py.)
"""

from __future__ import annotations

import threading
import time

import pika
import pytest

from syncd.broker import SyncdRabbitmqBroker, make_broker
from syncd.config import Settings
from syncd.errors import TransientError
from syncd.publish import publish_update
from tests.support.freezable_proxy import FreezableProxy, proxy_fixture, via  # noqa: F401
from tests.support.services import unique_name

pytestmark = pytest.mark.rabbitmq

DEADLINE = 1.0
# A shared, loaded 2-core machine; what is under test is the deadline against the ~85 s a
# frozen broker used to cost, not the slack.
SLACK = 5.0
UUID = "0" * 32


def _message_count(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ok = connection.channel().queue_declare(queue, passive=True)
        return int(ok.method.message_count)
    finally:
        connection.close()


def _timed_publish(settings: Settings, broker: object) -> tuple[float, str]:
    started = time.monotonic()
    try:
        publish_update(broker, settings, catalog_uuid=UUID)  # type: ignore[arg-type]
        outcome = "ok"
    except TransientError as exc:
        outcome = exc.message
    return time.monotonic() - started, outcome


def test_frozen_broker_fails_within_the_deadline_then_recovers(
    amqp_url: str, proxy: FreezableProxy
) -> None:
    queue = unique_name("deadline")
    settings = Settings(
        broker_url=via(amqp_url, proxy.port), queue_name=queue, publish_timeout_seconds=DEADLINE
    )
    broker = make_broker(settings)
    assert isinstance(broker, SyncdRabbitmqBroker)
    try:
        assert _timed_publish(settings, broker)[1] == "ok"
        proxy.freeze()
        try:
            # The thread's open connection waits for the confirm; then a new connection
            # waits in the AMQP handshake; then another thread, with a connection of its own.
            results = [_timed_publish(settings, broker), _timed_publish(settings, broker)]
            other = threading.Thread(
                target=lambda: results.append(_timed_publish(settings, broker))
            )
            other.start()
            other.join(timeout=DEADLINE + SLACK + 5)
        finally:
            proxy.thaw()
        assert len(results) == 3
        for seconds, outcome in results:
            assert outcome == (
                f"RabbitMQ did not confirm update_catalog on queue {queue!r} within 1 s; "
                "the command may or may not have been queued"
            )
            assert DEADLINE - 0.05 <= seconds <= DEADLINE + SLACK
        # Thawed: the next publish connects afresh and is confirmed at once.
        seconds, outcome = _timed_publish(settings, broker)
        assert outcome == "ok"
        assert seconds < SLACK
        assert all(c.is_open for c in broker.connections)  # the timed-out ones are gone
        # 2 confirmed; the first frozen publish reached the proxy and may have been queued.
        assert _message_count(amqp_url, queue) in {2, 3}
    finally:
        broker.close()


def test_deadline_timer_is_disarmed_after_a_confirmed_publish(amqp_url: str) -> None:
    queue = unique_name("deadline")
    settings = Settings(broker_url=amqp_url, queue_name=queue, publish_timeout_seconds=0.3)
    broker = make_broker(settings)
    assert isinstance(broker, SyncdRabbitmqBroker)
    try:
        for _ in range(3):
            assert _timed_publish(settings, broker)[1] == "ok"
            # Past the previous deadline: a timer left armed would now tear down the
            # connection in the middle of the next publish.
            time.sleep(0.5)
        assert len(broker.connections) == 1
        assert _message_count(amqp_url, queue) == 3
    finally:
        broker.close()
