"""/health, /ready and /metrics of the API (syncd.api.operations), on the embedded broker
and on the real RabbitMQ, including what /ready says when a dependency is down."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pika
import pytest
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, delete, insert

from syncd.api.app import create_app
from syncd.api.operations import router
from syncd.broker import make_broker
from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.db.tables import Catalog

# Nothing listens on port 1: connections are refused at once.
DOWN_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
DOWN_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


def _app(settings: Settings, engine: Engine, broker: Any) -> FastAPI:
    """The router alone, with the resources on app.state (the fallback create_app may use)."""
    app = FastAPI()
    app.include_router(router)
    app.state.settings, app.state.engine, app.state.broker = settings, engine, broker
    return app


@pytest.fixture
def queue() -> str:
    return f"ops_{secrets.token_hex(3)}"  # metrics are process-wide: labels of our own


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def _dead(queue: str) -> MessageProxy:
    return MessageProxy(Message(queue, "update_catalog", (), {"catalog_uuid": "x"}, {}))


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_health_and_ready_through_create_app(sqlite_url: str, sqlite_engine: Engine) -> None:
    settings = Settings(database_url=sqlite_url)
    broker = make_broker(settings)
    with TestClient(create_app(settings, engine=sqlite_engine, broker=broker)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}
        assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_ready_names_the_database_when_it_is_down(sqlite_url: str) -> None:
    settings = Settings(database_url=DOWN_DATABASE)
    engine = make_engine(DOWN_DATABASE, connect_args={"connect_timeout": 2})
    try:
        client = TestClient(_app(settings, engine, make_broker(settings)))
        ready = client.get("/ready")
        assert client.get("/health").status_code == 200  # liveness does not depend on it
    finally:
        engine.dispose()
    assert ready.status_code == 503
    body = ready.json()
    assert body["failed"] == ["database"]
    assert body["checks"]["broker"] == "ok"
    assert body["checks"]["database"].startswith("OperationalError")


def test_ready_names_the_broker_when_rabbitmq_is_down(
    sqlite_url: str, sqlite_engine: Engine
) -> None:
    settings = Settings(database_url=sqlite_url, broker_url=DOWN_BROKER)
    client = TestClient(_app(settings, sqlite_engine, make_broker(settings)))
    ready = client.get("/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"] == "ok"
    assert "guest" not in body["checks"]["broker"]  # no credentials in the answer


def test_metrics_refresh_gauges_from_database_and_in_process_queue(
    sqlite_url: str, sqlite_engine: Engine, queue: str
) -> None:
    settings = Settings(database_url=sqlite_url, queue_name=queue)
    broker = make_broker(settings)
    assert isinstance(broker, StubBroker)
    done = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = f"Ops{queue}"
    with sqlite_engine.begin() as conn:
        conn.execute(
            insert(Catalog),
            [
                {
                    "uuid": uuid.uuid4(),
                    "name": name,
                    "version": "1",
                    "last_successful_update": done,
                },
                {
                    "uuid": uuid.uuid4(),
                    "name": name,
                    "version": "2",
                    "last_successful_update": None,
                },
            ],
        )
    broker.dead_letters_by_queue[queue].extend([_dead(queue), _dead(queue)])
    broker.dead_letters_by_queue[f"{queue}.DQ"].append(_dead(f"{queue}.DQ"))
    broker.queues[queue].put(b"waiting")

    samples = _samples(TestClient(_app(settings, sqlite_engine, broker)).get("/metrics").text)

    def value(metric: str, **labels: str) -> float:
        return samples[(metric, frozenset(labels.items()))]

    last = "syncd_catalog_last_success_timestamp_seconds"
    assert value(last, catalog=f"{name}/1") == done.timestamp()
    assert value(last, catalog=f"{name}/2") == 0  # never succeeded
    assert value("syncd_dead_letter_queue_depth", queue=queue) == 3
    assert value("syncd_queue_depth", queue=queue, state="ready") == 1
    assert value("syncd_queue_depth", queue=queue, state="delayed") == 0

    with sqlite_engine.begin() as conn:  # a deleted catalog leaves the gauge
        conn.execute(delete(Catalog).where(Catalog.name == name, Catalog.version == "2"))
    samples = _samples(TestClient(_app(settings, sqlite_engine, broker)).get("/metrics").text)
    assert (last, frozenset({("catalog", f"{name}/2")})) not in samples


@pytest.mark.rabbitmq
def test_ready_and_dead_letter_depth_on_rabbitmq(
    sqlite_url: str, sqlite_engine: Engine, amqp_url: str, queue: str
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue=f"{queue}.XQ", durable=True)
        for _ in range(2):
            channel.basic_publish(exchange="", routing_key=f"{queue}.XQ", body=b"{}")
        # Declared but empty; the delay queue is not declared at all (counts as 0).
        channel.queue_declare(queue=queue, durable=True)
    finally:
        connection.close()
    settings = Settings(database_url=sqlite_url, broker_url=amqp_url, queue_name=queue)
    client = TestClient(_app(settings, sqlite_engine, make_broker(settings)))

    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    samples = _samples(client.get("/metrics").text)
    assert samples[("syncd_dead_letter_queue_depth", frozenset({("queue", queue)}))] == 2
    ready_depth = frozenset({("queue", queue), ("state", "ready")})
    delayed_depth = frozenset({("queue", queue), ("state", "delayed")})
    assert samples[("syncd_queue_depth", ready_depth)] == 0
    assert samples[("syncd_queue_depth", delayed_depth)] == 0
