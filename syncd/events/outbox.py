"""Writing an event: one `event_outbox` row in the caller's transaction, so the event exists
exactly when the change it reports was committed. The relay publishes it later."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert

from syncd.db.process_tables import EventOutbox

EVENT_TYPES = ("catalog.created", "catalog.deleted", "catalog.synced", "catalog.sync_failed")


def event_body(
    event_type: str,
    catalog: Mapping[str, Any],
    payload: Mapping[str, Any],
    *,
    event_id: uuid.UUID,
    occurred_at: datetime,
) -> dict[str, Any]:
    """The message body of docs/events.md: `catalog` needs name, version and uuid (a UUID or
    its hex); the uuid is written as hex, as the API writes uuids."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    catalog_uuid = catalog.get("uuid")
    return {
        "event_id": event_id.hex,
        "type": event_type,
        "occurred_at": occurred_at.isoformat(),
        "catalog": {
            "uuid": catalog_uuid.hex if isinstance(catalog_uuid, uuid.UUID) else catalog_uuid,
            "name": catalog.get("name", ""),
            "version": catalog.get("version", ""),
        },
        "payload": dict(payload),
    }


def write_event(
    connection: Connection,
    event_type: str,
    catalog: Mapping[str, Any],
    payload: Mapping[str, Any],
    *,
    occurred_at: datetime | None = None,
) -> uuid.UUID:
    """Add one event to the outbox inside `connection`'s transaction; returns its event_id."""
    event_id = uuid.uuid4()
    when = occurred_at or datetime.now(UTC)
    body = event_body(event_type, catalog, payload, event_id=event_id, occurred_at=when)
    connection.execute(
        insert(EventOutbox).values(
            event_id=event_id, type=event_type, occurred_at=when, body=body, attempts=0
        )
    )
    return event_id
