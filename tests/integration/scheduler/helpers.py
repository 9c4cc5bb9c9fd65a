"""Catalog rows and queue contents for the scheduler tests."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any, ClassVar

import pika
from dramatiq.brokers.stub import StubBroker
from prometheus_client import REGISTRY
from sqlalchemy import Engine, insert, select, update

from syncd.db.process_tables import SchedulerTick
from syncd.db.tables import Catalog
from syncd.domain import CatalogType
from syncd.publish import PublishTimeout


def add_catalog(
    engine: Engine,
    name: str,
    version: str,
    *,
    enabled: bool = True,
    last_attempt: datetime | None = None,
    enqueued_at: datetime | None = None,
    catalog_type: str = "binary_runtime",
    source_url: str = "",
) -> str:
    """Insert a catalog row; return its uuid in the canonical (hyphenated) form."""
    new_uuid = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            insert(Catalog).values(
                uuid=new_uuid,
                name=name,
                version=version,
                catalog_type=catalog_type,
                auto_update_enabled=enabled,
                last_update_attempt=last_attempt,
                update_enqueued_at=enqueued_at,
                source_url=source_url,
            )
        )
    return str(new_uuid)


def catalog_row(engine: Engine, catalog_uuid: str) -> Any:
    """The catalog's row (every column, by attribute name of the table)."""
    table = Catalog.__table__
    with engine.connect() as conn:
        return conn.execute(select(table).where(table.c.uuid == uuid.UUID(catalog_uuid))).one()


def start_attempt(engine: Engine, catalog_uuid: str, at: datetime) -> None:
    """What a worker does first when it takes update_catalog: stamp last_update_attempt."""
    with engine.begin() as conn:
        conn.execute(
            update(Catalog)
            .where(Catalog.uuid == uuid.UUID(catalog_uuid))
            .values(last_update_attempt=at, update_errors="")
        )


def update_uuids(bodies: list[bytes]) -> Counter[str]:
    """How many update_catalog messages each catalog uuid got."""
    found: Counter[str] = Counter()
    for body in bodies:
        message = json.loads(body)
        assert message["actor_name"] == "update_catalog", message
        found[message["kwargs"]["catalog_uuid"]] += 1
    return found


def drain(amqp_url: str, queue_name: str) -> Counter[str]:
    """Take every message off a RabbitMQ queue; update_catalog messages per catalog uuid."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        bodies = []
        while True:
            method, _properties, body = channel.basic_get(queue_name, auto_ack=True)
            if method is None:
                break
            bodies.append(body)
        return update_uuids(bodies)
    finally:
        connection.close()


def stub_messages(broker: StubBroker, queue_name: str) -> Counter[str]:
    return update_uuids(list(broker.queues[queue_name].queue))


def tick_rows(engine: Engine) -> list[dict[str, Any]]:
    """The claimed ticks, oldest first, as dicts of tick_id, claimed_by, claimed_at, enqueued."""
    table = SchedulerTick.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.tick_id)).all()
    return [dict(row._mapping) for row in rows]


def skipped_count(reason: str) -> float:
    """syncd_scheduler_skipped_total{reason} as this process counted it so far."""
    return REGISTRY.get_sample_value("syncd_scheduler_skipped_total", {"reason": reason}) or 0.0


class ScriptedBroker:
    """A broker for `syncd.publish.publish`: `enqueue_within` as SyncdRabbitmqBroker has it,
    failing with what `fail(catalog_uuid)` returns (None: accepted). `attempts` lists the
    catalog uuids it was asked to publish, `accepted` those it took."""

    def __init__(self, fail: Any) -> None:
        self.fail = fail
        self.attempts: list[str] = []
        self.accepted: list[str] = []

    def enqueue_within(self, message: Any, timeout: float) -> Any:
        catalog_uuid = message.kwargs["catalog_uuid"]
        self.attempts.append(catalog_uuid)
        error = self.fail(catalog_uuid)
        if isinstance(error, PublishTimeout):
            time.sleep(timeout)  # what a frozen broker costs before the deadline fires
        if error is not None:
            raise error
        self.accepted.append(catalog_uuid)
        return message


def timing_out_broker() -> ScriptedBroker:
    """Every publish waits out the deadline and fails as SyncdRabbitmqBroker's does."""
    return ScriptedBroker(lambda _uuid: PublishTimeout("RabbitMQ did not confirm the publish"))


class FakeEessi:
    """An adapter whose discover lists the given versions (newest first) or raises."""

    name: ClassVar[str] = "EESSI"
    catalog_type: ClassVar[CatalogType] = CatalogType.BINARY_RUNTIME

    def __init__(self, versions: list[str] | Exception) -> None:
        self.versions = versions
        self.calls = 0
        self.source: str | None = None

    def discover(self, fetcher: Any, source: str | None = None) -> list[str]:
        self.calls += 1
        self.source = source
        if isinstance(self.versions, Exception):
            raise self.versions
        return list(self.versions)


class FakeSpack(FakeEessi):
    name: ClassVar[str] = "Spack"
    catalog_type: ClassVar[CatalogType] = CatalogType.SOURCE_PACKAGE
