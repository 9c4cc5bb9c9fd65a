"""Closing the broker at shutdown after RabbitMQ dropped an idle connection."""

from __future__ import annotations

import logging
import time

import pytest

from syncd.broker import close_at_shutdown, make_broker
from syncd.config import Settings

pytestmark = pytest.mark.rabbitmq


def test_a_connection_rabbitmq_dropped_closes_without_error_lines(
    amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A 1 s heartbeat that this idle thread never answers: RabbitMQ drops the connection
    # after two missed beats, as it does to a worker's start-up connection after a minute.
    broker = make_broker(Settings(broker_url=f"{amqp_url}?heartbeat=1"))
    connection = broker.connection  # type: ignore[attr-defined]
    time.sleep(4)
    with caplog.at_level(logging.DEBUG, logger="pika"):
        close_at_shutdown(broker)
    assert not connection.is_open
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage()[:200] for r in errors]
    # Outside the shutdown close, pika's levels are as they were.
    assert logging.getLogger("pika").level != logging.CRITICAL
