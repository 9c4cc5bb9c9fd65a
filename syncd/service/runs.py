"""The sync history's write side (issue 15): one sync_run row per attempt of a command on a
catalog, the sync_change rows of what it changed, and the outbox event that reports it.

A run that wrote rows is written inside the sync's own transaction (sync_catalog's
`on_written`, through RunWriter), so run, changes, event and rows commit or roll back
together. Any other attempt (upstream unchanged, failed, refused) is written once it has
ended, in a short transaction of its own (record_run). The read API, the feeds and the
event relay only read what is written here.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, insert, select

from syncd.db.process_tables import SyncChange, SyncRun
from syncd.db.tables import Catalog
from syncd.domain import RUN_TRIGGERS, SyncStats
from syncd.events.outbox import write_event
from syncd.logging import get_logger
from syncd.redaction import redact_urls

if TYPE_CHECKING:
    from syncd.sync.plan_changes import Changes

log = get_logger(__name__)

SUCCEEDED, UNCHANGED, FAILED, REFUSED = "succeeded", "unchanged", "failed", "refused"
TRIGGER_DEFAULT = RUN_TRIGGERS[2]  # "message": a producer that does not say
# catalog.synced carries the first changes; the rest are paged through the API.
CHANGES_IN_EVENT = 100
CHANGES_URL = "/api/marketplace-software-changes/?run_uuid={}"
COUNTED_KINDS = ("packages", "versions", "targets")
MAX_ERROR_CHARS = 4000


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunContext:
    """Who asked for an attempt, through which message, and when it started: what its run
    row needs besides the attempt's result. `message_id` is "" without a message (the CLI
    running a command in the embedded default)."""

    trigger: str = TRIGGER_DEFAULT
    message_id: str = ""
    uuid: uuid_module.UUID = field(default_factory=uuid_module.uuid4)
    started: datetime = field(default_factory=_now)


@dataclass(frozen=True)
class RunCatalog:
    """The catalog a run worked on, by value: the history outlives a deleted catalog, and an
    import that failed before its row existed has no uuid (None)."""

    uuid: str | None  # hex
    name: str
    version: str
    catalog_type: str


@dataclass(frozen=True)
class RunResult:
    outcome: str
    validators: Mapping[str, Any] = field(default_factory=dict)
    stats: SyncStats | None = None
    error: str = ""
    will_retry: bool = False


def counts_of(stats: SyncStats | None) -> dict[str, dict[str, int]]:
    """sync_run.counts: created/updated/deleted/unchanged of packages, versions, targets."""
    counted = (stats or SyncStats()).as_dict()
    return {kind: counted[kind] for kind in COUNTED_KINDS}


def change_rows(changes: Changes | None, stats: SyncStats | None) -> list[dict[str, Any]]:
    """The sync_change rows (without run, catalog and time): one catalog_imported row for a
    first import, else one per change."""
    if changes is not None and changes.first_import:
        created = stats or SyncStats()
        details = {
            "packages": created.packages.created,
            "versions": created.versions.created,
            "targets": created.targets.created,
        }
        return [_change_row("catalog_imported", "", "", "", details)]
    return [
        _change_row(c.kind, c.package, c.version, c.module_version, c.details())
        for c in (changes.items if changes is not None else [])
    ]


def _change_row(
    kind: str, package: str, version: str, module_version: str, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "change": kind,
        "package_name": package,
        "version": version,
        "module_version": module_version,
        "details": details,
    }


def write_run(
    conn: Connection,
    context: RunContext,
    command: str,
    catalog: RunCatalog,
    result: RunResult,
    changes: list[dict[str, Any]] | None = None,
) -> None:
    """The run row, its change rows and its event, in `conn`'s transaction."""
    finished = _now()
    changes = changes or []
    catalog_uuid = uuid_module.UUID(catalog.uuid) if catalog.uuid else None
    error = redact_urls(result.error)[:MAX_ERROR_CHARS]
    counts = counts_of(result.stats)
    run_id = conn.execute(
        insert(SyncRun)
        .values(
            uuid=context.uuid,
            catalog_uuid=catalog_uuid,
            catalog_name=catalog.name[:100],
            catalog_version=catalog.version[:50],
            catalog_type=catalog.catalog_type,
            trigger=context.trigger,
            command=command,
            message_id=context.message_id[:64],
            started=context.started,
            finished=finished,
            outcome=result.outcome,
            validators=dict(result.validators),
            counts=counts,
            change_count=len(changes),
            error=error,
        )
        .returning(SyncRun.id)
    ).scalar_one()
    if changes:
        common = {"run_id": run_id, "catalog_uuid": catalog_uuid, "created": finished}
        conn.execute(
            insert(SyncChange), [{"uuid": uuid_module.uuid4(), **common, **c} for c in changes]
        )
    event_catalog = {"uuid": catalog.uuid, "name": catalog.name, "version": catalog.version}
    head = {"run_uuid": context.uuid.hex, "trigger": context.trigger, "outcome": result.outcome}
    if result.outcome == SUCCEEDED:
        write_event(
            conn,
            "catalog.synced",
            event_catalog,
            head
            | {
                "started": context.started.isoformat(),
                "finished": finished.isoformat(),
                "counts": counts,
                "change_count": len(changes),
                "changes": changes[:CHANGES_IN_EVENT],
                "changes_url": CHANGES_URL.format(context.uuid.hex),
            },
            occurred_at=finished,
        )
    elif result.outcome in (FAILED, REFUSED):
        payload = head | {"error": error, "will_retry": result.will_retry}
        write_event(conn, "catalog.sync_failed", event_catalog, payload, occurred_at=finished)


def record_run(
    engine: Engine, context: RunContext, command: str, catalog: RunCatalog, result: RunResult
) -> None:
    """A run that wrote no rows, in its own transaction. Never raises: the attempt's own
    result is what its caller must see (the database may be what failed it)."""
    try:
        with engine.begin() as conn:
            write_run(conn, context, command, catalog, result)
    except Exception as exc:
        log.warning("sync_run_not_written", outcome=result.outcome, error=str(exc).splitlines()[0])


class RunWriter:
    """sync_catalog's `on_written` for one attempt: the `succeeded` run, inside the sync's
    transaction. `written` tells the attempt that its run exists already."""

    def __init__(
        self,
        context: RunContext,
        command: str,
        catalog_id: int,
        catalog: RunCatalog,
        validators: Mapping[str, Any],
    ) -> None:
        self.context = context
        self.command = command
        self.catalog_id = catalog_id
        self.catalog = catalog
        self.validators = validators
        self.written = False

    def __call__(self, conn: Connection, stats: SyncStats, changes: Changes) -> None:
        # The row as the sync leaves it: a rolling upstream (Spack) moves its version label.
        row = conn.execute(
            select(Catalog.name, Catalog.version).where(Catalog.id == self.catalog_id)
        ).one()
        catalog = RunCatalog(self.catalog.uuid, row.name, row.version, self.catalog.catalog_type)
        result = RunResult(SUCCEEDED, self.validators, stats)
        write_run(conn, self.context, self.command, catalog, result, change_rows(changes, stats))
        self.written = True
