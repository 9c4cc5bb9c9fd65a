"""Catalog rows and queue contents for the scheduler tests."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, insert, select

from syncd.db.tables import Catalog, SchedulerTick


def add_catalog(
    engine: Engine,
    name: str,
    version: str,
    *,
    enabled: bool = True,
    last_attempt: datetime | None = None,
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
                source_url=source_url,
            )
        )
    return str(new_uuid)


def update_uuids(bodies: list[bytes]) -> Counter[str]:
    """How many update_catalog messages each catalog uuid got."""
    found: Counter[str] = Counter()
    for body in bodies:
        message = json.loads(body)
        assert message["actor_name"] == "update_catalog", message
        found[message["kwargs"]["catalog_uuid"]] += 1
    return found


def stub_messages(broker: StubBroker, queue_name: str) -> Counter[str]:
    return update_uuids(list(broker.queues[queue_name].queue))


def tick_rows(engine: Engine) -> list[dict[str, Any]]:
    """The claimed ticks, oldest first, as dicts of tick_id, claimed_by, claimed_at, enqueued."""
    table = SchedulerTick.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.tick_id)).all()
    return [dict(row._mapping) for row in rows]
