"""Tables of what syncd's own processes keep about their work, beside the catalogs: scheduler
ticks, command outcomes, message deliveries, pending commands of the embedded queue, sync
runs and their changes, and the events outbox. Imported by syncd/db/__init__.py, so every
table is in `Base.metadata` whichever module is imported first.
"""

from __future__ import annotations

import uuid as uuid_module
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from syncd.db.tables import Base, IdType, JSONType, _now


class SchedulerTick(Base):
    """A claimed scheduler tick: the unique tick_id makes a tick fire at most once even if
    the leader changes while it runs."""

    __tablename__ = "scheduler_tick"

    tick_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(200), default="")
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    enqueued: Mapped[int] = mapped_column(Integer, default=0)


class CommandOutcome(Base):
    """How the latest attempt of a published command ended, by its message id: what
    `syncd import|update --wait` follows (a command can fail before it has a catalog row,
    and another attempt on the same catalog is not this one). Kept for a week."""

    __tablename__ = "command_outcome"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    actor: Mapped[str] = mapped_column(String(50))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    # False while Dramatiq will retry the command: the outcome is not its last word yet.
    final: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str] = mapped_column(Text, default="")
    catalog_uuid: Mapped[uuid_module.UUID | None] = mapped_column(Uuid, nullable=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class MessageDelivery(Base):
    """How many times a message came back redelivered (its worker died, or lost RabbitMQ,
    before answering), by message id: what stops a message that kills every worker that runs
    it (syncd/deliveries.py). Only redeliveries write here; kept for a week."""

    __tablename__ = "message_delivery"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deaths: Mapped[int] = mapped_column(Integer)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PendingCommand(Base):
    """A command the in-process queue of `syncd run` accepted and has not finished, by
    message id: that queue lives in memory, so this row is what survives a stop. Written
    before the API answers 202, deleted when the command's last attempt ended; whatever is
    left when `syncd run` starts is queued again (syncd/pending.py, syncd/broker/embedded.py).
    RabbitMQ keeps its own unacknowledged messages, so its deployments never write here."""

    __tablename__ = "pending_command"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    actor: Mapped[str] = mapped_column(String(50))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SyncRun(Base):
    """One attempt of one command on a catalog (issue 15): who asked (`trigger`), how it
    ended, what upstream said and what it wrote. A run that wrote rows is committed in the
    sync's own transaction; a failed or refused one in its own short transaction. The
    catalog is named by value, not by foreign key, so the history outlives a deleted catalog
    (and an import that failed before its catalog row existed has no uuid)."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_catalog_started", "catalog_uuid", "started"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid_module.UUID] = mapped_column(
        Uuid, unique=True, default=uuid_module.uuid4, nullable=False
    )
    catalog_uuid: Mapped[uuid_module.UUID | None] = mapped_column(Uuid, nullable=True)
    catalog_name: Mapped[str] = mapped_column(String(100), default="")
    catalog_version: Mapped[str] = mapped_column(String(50), default="")
    catalog_type: Mapped[str] = mapped_column(String(20), default="")
    # api | scheduler | message | cli
    trigger: Mapped[str] = mapped_column(String(20))
    # import_catalog | update_catalog (the actor's command), or "" for a CLI run without one.
    command: Mapped[str] = mapped_column(String(50), default="")
    message_id: Mapped[str] = mapped_column(String(64), default="")
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # succeeded | unchanged | failed | refused
    outcome: Mapped[str] = mapped_column(String(20), index=True)
    # The upstream validators seen: {"etag": ..., "last_modified": ..., "hash": ...} per URL.
    validators: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # {"packages": {"created": n, "updated": n, "deleted": n, "unchanged": n}, "versions":
    # {...}, "targets": {...}}
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # How many sync_change rows the run wrote (the feeds and events page by it).
    change_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")


class SyncChange(Base):
    """One thing a run changed (issue 15): package_added, package_removed, package_updated,
    version_added, version_removed, version_updated, target_added, target_removed (one row
    per version, `details` = {"targets": n, "names": [...]}) or, for a first import, one
    catalog_imported row whose `details` are its counts. `details` of an *_updated change
    names the fields that changed: {"fields": [...]}. Deleted with its run."""

    __tablename__ = "sync_change"
    __table_args__ = (
        Index("ix_sync_change_catalog_created", "catalog_uuid", "created"),
        Index("ix_sync_change_created", "created"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    uuid: Mapped[uuid_module.UUID] = mapped_column(
        Uuid, unique=True, default=uuid_module.uuid4, nullable=False
    )
    run_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("sync_run.id", ondelete="CASCADE"), index=True
    )
    catalog_uuid: Mapped[uuid_module.UUID | None] = mapped_column(Uuid, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    change: Mapped[str] = mapped_column(String(30), index=True)
    package_name: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[str] = mapped_column(String(100), default="")
    module_version: Mapped[str] = mapped_column(String(150), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class EventOutbox(Base):
    """An event for the `SYNCD_EVENTS_EXCHANGE` topic exchange (issue 15), written in the
    same transaction as the change it reports; a relay publishes it with confirms and sets
    `published_at`. At least once: a relay that dies between the confirm and the update
    sends it again, and consumers de-duplicate by `event_id`."""

    __tablename__ = "event_outbox"
    __table_args__ = (
        Index(
            "ix_event_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid_module.UUID] = mapped_column(Uuid, unique=True, nullable=False)
    # catalog.created | catalog.deleted | catalog.synced | catalog.sync_failed (routing key)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # The whole message body, as published.
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
