"""Fixtures of the worker tests: settings on this run's PostgreSQL database and RabbitMQ
vhost (a queue of each test's own), and an in-process worker on the real broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest
from sqlalchemy import Engine

from syncd.broker import make_broker, worker_resources
from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.worker import start_in_process
from tests.support.services import unique_name


@pytest.fixture
def mq_settings(pg_url: str, amqp_url: str) -> Settings:
    return Settings(
        database_url=pg_url,
        broker_url=amqp_url,
        queue_name=unique_name("q"),
        min_backoff_ms=100,
        max_backoff_ms=400,
        max_retries=2,
        worker_threads=4,
        shutdown_timeout_seconds=5,
        allow_private_sources=True,
        allow_file_sources=True,
    )


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


StartWorker = Callable[..., dramatiq.Broker]


@pytest.fixture
def start_worker(mq_settings: Settings, pg_engine: Engine) -> Iterator[StartWorker]:
    """start_worker(adapters, settings=None) -> broker: a worker in this process on the real
    RabbitMQ (settings default to mq_settings)."""
    running: list[tuple[dramatiq.Worker, dramatiq.Broker]] = []

    def start(adapters: dict[str, Any], settings: Settings | None = None) -> dramatiq.Broker:
        settings = settings or mq_settings
        broker = make_broker(settings)
        worker_resources(broker).provide(adapters=adapters, fetcher=object())
        running.append((start_in_process(settings, broker, pg_engine), broker))
        return broker

    yield start
    for worker, broker in running:
        worker.stop(timeout=10_000)
        broker.close()
