"""SYNCD_PUBLISH_TIMEOUT_SECONDS: parsing, and how publish() words a missed deadline."""

from __future__ import annotations

from typing import Any

import dramatiq
import pika
import pytest
from dramatiq.brokers.stub import StubBroker

from syncd.broker import SyncdRabbitmqBroker, check_queue_settings
from syncd.config import SETTINGS_DOC, Settings, load_settings
from syncd.errors import TransientError
from syncd.publish import ACTOR_UPDATE, PublishTimeout, build_message, publish

UUID = "0" * 32


def test_default_is_ten_seconds_and_documented() -> None:
    assert load_settings({}).publish_timeout_seconds == 10.0
    assert "publish_timeout_seconds" in SETTINGS_DOC


def test_value_is_parsed_as_seconds() -> None:
    settings = load_settings({"SYNCD_PUBLISH_TIMEOUT_SECONDS": "2.5"})
    assert settings.publish_timeout_seconds == 2.5
    assert load_settings({"SYNCD_PUBLISH_TIMEOUT_SECONDS": "3"}).publish_timeout_seconds == 3.0


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "-inf", "ten", ""])
def test_invalid_value_names_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match="SYNCD_PUBLISH_TIMEOUT_SECONDS") as info:
        load_settings({"SYNCD_PUBLISH_TIMEOUT_SECONDS": raw})
    if raw not in {"ten", ""}:
        assert "must be a positive number of seconds" in str(info.value)


@pytest.mark.parametrize("value", [0.0, -5.0, float("nan"), float("inf")])
def test_broker_refuses_settings_built_with_a_bad_timeout(value: float) -> None:
    with pytest.raises(ValueError, match="SYNCD_PUBLISH_TIMEOUT_SECONDS must be a positive"):
        check_queue_settings(Settings(publish_timeout_seconds=value))


class _FrozenBroker(StubBroker):
    """A broker whose deadline-bounded enqueue always runs out of time."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def enqueue_within(self, message: dramatiq.Message[Any], timeout: float) -> Any:
        self.timeouts.append(timeout)
        raise PublishTimeout("RabbitMQ did not confirm the publish in time")


def test_missed_deadline_becomes_a_transient_error_that_says_so() -> None:
    broker = _FrozenBroker()
    message = build_message("syncd", ACTOR_UPDATE, {"catalog_uuid": UUID})
    with pytest.raises(TransientError) as info:
        publish(broker, message, timeout=2.0)
    assert broker.timeouts == [2.0]
    assert info.value.message == (
        "RabbitMQ did not confirm update_catalog on queue 'syncd' within 2 s; "
        "the command may or may not have been queued"
    )


def test_in_process_queue_needs_no_deadline() -> None:
    broker = StubBroker()
    broker.declare_queue("syncd")
    message = build_message("syncd", ACTOR_UPDATE, {"catalog_uuid": UUID})
    assert publish(broker, message, timeout=0.001) == message.message_id
    assert broker.queues["syncd"].qsize() == 1


def test_handshake_gets_at_most_the_time_left_shared_between_urls() -> None:
    one = SyncdRabbitmqBroker(url="amqp://guest:guest@127.0.0.1:1/%2F")
    [clamped] = one._clamped_parameters(2.0)
    assert clamped.stack_timeout == 2.0
    assert isinstance(one.parameters, pika.URLParameters)
    assert one.parameters.stack_timeout == 15.0  # pika's default, untouched
    two = SyncdRabbitmqBroker(url="amqp://127.0.0.1:1/%2F;amqp://127.0.0.1:2/%2F")
    assert [p.stack_timeout for p in two._clamped_parameters(2.0)] == [1.0, 1.0]
    assert [p.stack_timeout for p in two._clamped_parameters(60.0)] == [15.0, 15.0]
