"""syncd.broker.LogContext: the message's id and catalog on every line about it, Dramatiq's
own included."""

from __future__ import annotations

import logging

import dramatiq
import structlog
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries

from syncd.broker import LogContext


class Grab(logging.Handler):
    """Keeps each record's message with the structlog context bound when it was logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, dict[str, object]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), dict(structlog.contextvars.get_contextvars())))


def test_dramatiqs_retry_line_carries_the_catalog_and_the_context_is_unbound_after() -> None:
    broker = StubBroker(middleware=[LogContext(), Retries(max_retries=1, min_backoff=1)])
    broker.emit_after("process_boot")

    @dramatiq.actor(broker=broker, actor_name="update_catalog", queue_name="q")
    def update_catalog(catalog_uuid: str) -> None:
        raise RuntimeError("upstream down")

    grab = Grab()
    retries_logger = logging.getLogger("dramatiq.middleware.retries.Retries")
    retries_logger.addHandler(grab)
    previous = retries_logger.level
    retries_logger.setLevel(logging.DEBUG)
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        message = update_catalog.send(catalog_uuid="ABCDEF00-0000-0000-0000-000000000001")
        broker.join("q", fail_fast=False)
        worker.join()
    finally:
        worker.stop()
        retries_logger.removeHandler(grab)
        retries_logger.setLevel(previous)

    retrying = [context for text, context in grab.seen if text.startswith("Retrying message")]
    assert retrying, grab.seen
    assert retrying[0]["message_id"] == message.message_id
    assert retrying[0]["catalog_uuid"] == "abcdef00000000000000000000000001"
    assert "catalog_uuid" not in structlog.contextvars.get_contextvars()


def test_an_import_binds_name_and_version() -> None:
    message = dramatiq.Message(
        queue_name="q",
        actor_name="import_catalog",
        args=(),
        kwargs={"name": "EESSI", "version": "2023.06"},
        options={},
    )
    context = LogContext()
    context.before_process_message(StubBroker(), message)
    try:
        bound = structlog.contextvars.get_contextvars()
        assert (bound["catalog_name"], bound["catalog_version"]) == ("EESSI", "2023.06")
        assert "catalog_uuid" not in bound
    finally:
        context.after_process_message(StubBroker(), message)
    assert "catalog_name" not in structlog.contextvars.get_contextvars()
