"""The commands: import a catalog, update a catalog.

Plain functions that take their dependencies (engine, adapters, fetcher) as parameters; the
worker's actors, `syncd import` in the embedded mode and tests call them the same way.

One attempt, for both commands:
1. mark the attempt: last_update_attempt = now and update_errors cleared, committed before
   anything slow happens (import creates the row here, race-free);
2. fetch the snapshot from the adapter (conditional: None = upstream not modified);
3. hand it to syncd.sync.sync_catalog, which writes contents in one transaction under the
   catalog's lock;
4. success: last_successful_update = now. Failure: update_errors = what failed, where and
   why; the catalog's contents stay as they were; the exception is re-raised so that the
   worker can decide about a retry (`is_transient`).

Clearing update_errors when an attempt starts makes the row tell its state: an attempt is
running while last_update_attempt > last_successful_update and update_errors is empty, it
failed when update_errors is set, it succeeded when last_successful_update caught up.
`syncd update --wait` follows exactly that.
"""

from __future__ import annotations

import time
import uuid as uuid_module
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from syncd import metrics
from syncd.cache_events import data_changed
from syncd.db.tables import Catalog
from syncd.domain import CatalogSnapshot, SyncStats
from syncd.errors import NoAdapterError, SyncdError, UnknownCatalogError, UpstreamError
from syncd.logging import bind_job_context, get_logger

log = get_logger(__name__)

ACTOR_IMPORT = "import_catalog"
ACTOR_UPDATE = "update_catalog"

# update_errors is a TEXT column, but an operator reads it in a web page: keep it readable.
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class CommandResult:
    """What one successful command did."""

    catalog_uuid: str
    catalog_id: int
    name: str
    version: str
    catalog_type: str
    created: bool  # import made a new catalog row
    changed: bool  # False: upstream answered "not modified", nothing was written
    stats: SyncStats | None
    seconds: float


@dataclass(frozen=True)
class _Target:
    """The catalog row an attempt works on, as read when the attempt was marked."""

    id: int
    uuid: str
    name: str
    version: str
    catalog_type: str
    source_url: str
    validators: dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC)


# --- public commands --------------------------------------------------------------------


def import_catalog(
    engine: Engine,
    adapters: Mapping[str, Any],
    fetcher: Any,
    *,
    name: str,
    version: str | None = None,
    source: str | None = None,
    will_retry: bool = False,
) -> CommandResult:
    """Import (or refresh, when it exists) the catalog `name` `version` from its adapter.

    version None = the latest version upstream offers (adapter.discover). The row is made by
    INSERT ... ON CONFLICT DO NOTHING on (name, version, catalog_type), so racing imports
    share one row, and an import that failed earlier is completed by the next one.
    `will_retry`: the caller retries a transient failure (the worker, while its retry budget
    lasts); it only changes the wording of update_errors and the log.
    """
    started = time.monotonic()
    with bind_job_context(catalog_name=name, catalog_version=version):
        log.info(
            "command_received", command=ACTOR_IMPORT, name=name, version=version, source=source
        )
        target: _Target | None = None
        stage = "resolve"
        try:
            adapter = find_adapter(adapters, name)
            if version is None:
                stage = "discover"
                version = latest_version(adapter, fetcher, source)
            stage = "mark"
            target, created = _create_or_mark(engine, adapter, version, source)
            metrics.COMMANDS_RECEIVED.labels(actor=ACTOR_IMPORT, catalog=_label(target)).inc()
            return _attempt(
                engine, adapter, fetcher, target, ACTOR_IMPORT, source or target.source_url,
                created=created, started=started, will_retry=will_retry,
            )  # fmt: skip
        except BaseException as exc:
            if target is None:  # no row to write to: the log line is all there is
                _failed_before_marking(
                    exc, ACTOR_IMPORT, metrics.catalog_label(name, version), stage, will_retry
                )
            raise


def update_catalog(
    engine: Engine,
    adapters: Mapping[str, Any],
    fetcher: Any,
    *,
    catalog_uuid: str,
    will_retry: bool = False,
) -> CommandResult:
    """Refresh the catalog `catalog_uuid` (hyphens optional) from its adapter."""
    started = time.monotonic()
    parsed = parse_uuid(catalog_uuid)
    with bind_job_context(catalog_uuid=parsed.hex if parsed else catalog_uuid):
        log.info("command_received", command=ACTOR_UPDATE)
        target: _Target | None = None
        try:
            target = _mark(engine, catalog_uuid)
            metrics.COMMANDS_RECEIVED.labels(actor=ACTOR_UPDATE, catalog=_label(target)).inc()
            adapter = adapter_for(adapters, target.name, target.catalog_type)
            return _attempt(
                engine, adapter, fetcher, target, ACTOR_UPDATE, target.source_url,
                created=False, started=started, will_retry=will_retry,
            )  # fmt: skip
        except NoAdapterError as exc:
            assert target is not None
            _record_failure(engine, target, exc, ACTOR_UPDATE, "resolve", will_retry)
            raise
        except BaseException as exc:
            if target is None:
                _failed_before_marking(exc, ACTOR_UPDATE, catalog_uuid, "mark", will_retry)
            raise


# --- helpers other modules use (API, CLI) ---------------------------------------------


def find_adapter(adapters: Mapping[str, Any], name: str) -> Any:
    """The adapter called `name` (exact, else case-insensitive); NoAdapterError if none."""
    if name in adapters:
        return adapters[name]
    for key, adapter in adapters.items():
        if key.lower() == name.lower():
            return adapter
    installed = ", ".join(sorted(adapters)) or "none"
    raise NoAdapterError(f"No loader configuration found for {name} (installed: {installed}).")


def adapter_for(adapters: Mapping[str, Any], name: str, catalog_type: str) -> Any:
    """The adapter that handles a catalog row; Waldur's message when none does."""
    adapter = adapters.get(name)
    if adapter is None or str(adapter.catalog_type) != catalog_type:
        raise NoAdapterError(f"No loader configuration found for {name} ({catalog_type}).")
    return adapter


def latest_version(adapter: Any, fetcher: Any, source: str | None) -> str:
    versions = adapter.discover(fetcher, source=source)
    if not versions:
        raise UpstreamError(
            f"{adapter.name} upstream at {source or adapter.default_source()} offers no "
            "catalog versions; name one with --version",
            transient=False,
        )
    return str(versions[0])


def parse_uuid(value: str) -> uuid_module.UUID | None:
    try:
        return uuid_module.UUID(str(value).strip())
    except ValueError:
        return None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same command later may succeed."""
    if isinstance(exc, SyncdError):
        return exc.transient
    if isinstance(exc, OperationalError | DisconnectionError | PoolTimeoutError):
        return True  # database gone, restarting, or out of connections
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    # Dramatiq's TimeLimitExceeded (an Interrupt, not an Exception): a slow upstream or a
    # busy database may be faster next time. Matched by name: the service knows no queue.
    return type(exc).__name__ == "TimeLimitExceeded"


def describe_error(exc: BaseException, stage: str) -> str:
    """The update_errors text: what failed, where, why."""
    if isinstance(exc, SyncdError):
        text = exc.message
    elif type(exc).__name__ == "TimeLimitExceeded":
        text = f"{_STAGES[stage]} did not finish within the worker's time limit and was stopped"
    elif isinstance(exc, DBAPIError):
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        text = f"{_STAGES[stage]} failed: database error {type(exc.orig).__name__}: {detail}"
    else:
        text = f"{_STAGES[stage]} failed: {type(exc).__name__}: {exc or 'no detail'}"
    return text[:MAX_ERROR_CHARS]


_STAGES = {
    "resolve": "Finding the adapter",
    "discover": "Asking upstream for its versions",
    "mark": "Recording the attempt in the database",
    "fetch": "Fetching the upstream data",
    "sync": "Writing the catalog into the database",
    "finish": "Recording the result in the database",
}


# --- one attempt ----------------------------------------------------------------------


def _attempt(
    engine: Engine,
    adapter: Any,
    fetcher: Any,
    target: _Target,
    actor: str,
    source: str,
    *,
    created: bool,
    started: float,
    will_retry: bool,
) -> CommandResult:
    label = _label(target)
    stage = "fetch"
    with bind_job_context(
        catalog_uuid=target.uuid, catalog_name=target.name, catalog_version=target.version
    ):
        try:
            log.info("fetch_started", adapter=adapter.name, source=source or "default")
            fetch_started = time.monotonic()
            bytes_before = _bytes_downloaded(fetcher)
            snapshot: CatalogSnapshot | None = adapter.fetch_snapshot(
                fetcher,
                version=target.version,
                source=source or None,
                validators=target.validators,
            )
            fetch_seconds = round(time.monotonic() - fetch_started, 3)
            stats: SyncStats | None = None
            if snapshot is None:
                log.info("upstream_not_modified", seconds=fetch_seconds)
                metrics.UPSTREAM_NOT_MODIFIED.labels(adapter=adapter.name).inc()
            else:
                fetched = _bytes_downloaded(fetcher) - bytes_before
                log.info("fetch_finished", seconds=fetch_seconds, bytes=fetched)
                metrics.UPSTREAM_BYTES.labels(adapter=adapter.name).inc(fetched)
                stage = "sync"
                stats = _sync(engine, target, snapshot)
            stage = "finish"
            _record_success(engine, target)
        except BaseException as exc:
            _record_failure(engine, target, exc, actor, stage, will_retry)
            raise
        seconds = round(time.monotonic() - started, 3)
        log.info(
            "command_succeeded",
            command=actor,
            changed=snapshot is not None,
            created=created,
            rows_written=stats.rows_written if stats else 0,
            seconds=seconds,
        )
        metrics.COMMANDS_SUCCEEDED.labels(actor=actor, catalog=label).inc()
        metrics.LAST_SUCCESS.labels(catalog=label).set(time.time())
        return CommandResult(
            catalog_uuid=target.uuid,
            catalog_id=target.id,
            name=target.name,
            version=target.version,
            catalog_type=target.catalog_type,
            created=created,
            changed=snapshot is not None,
            stats=stats,
            seconds=seconds,
        )


def _sync(engine: Engine, target: _Target, snapshot: CatalogSnapshot) -> SyncStats:
    # Imported here: the sync engine is heavy and only the worker needs it. It logs
    # "sync_finished" and records SYNC_DURATION / ROWS_WRITTEN itself.
    from syncd.sync import sync_catalog

    return sync_catalog(engine, target.id, snapshot)


def _bytes_downloaded(fetcher: Any) -> int:
    """This thread's running byte count: the fetcher is shared by the worker's threads, so
    only the per-thread counter gives an exact figure for one command."""
    value = getattr(fetcher, "thread_bytes_downloaded", 0)
    return value if isinstance(value, int) else 0


# --- database steps -------------------------------------------------------------------


def _insert(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        return postgresql.insert(Catalog)
    return sqlite.insert(Catalog)


def _create_or_mark(
    engine: Engine, adapter: Any, version: str, source: str | None
) -> tuple[_Target, bool]:
    """Make the catalog row if it is not there, and mark this attempt on it, in one
    transaction. ON CONFLICT DO NOTHING on the unique (name, version, catalog_type): of two
    racing imports one inserts, the other finds the row; neither fails."""
    key = {
        "name": adapter.name,
        "version": version,
        "catalog_type": str(adapter.catalog_type),
    }
    stamp = now()
    with engine.begin() as conn:
        inserted = conn.execute(
            _insert(engine)
            .values(
                **key,
                uuid=uuid_module.uuid4(),
                source_url=source or "",
                last_update_attempt=stamp,
                update_errors="",
            )
            .on_conflict_do_nothing(index_elements=["name", "version", "catalog_type"])
            .returning(Catalog.id)
        )
        # RETURNING yields the row only when this INSERT made it (rowcount is not reliable
        # across drivers for INSERT ... ON CONFLICT).
        created = inserted.first() is not None
        values: dict[str, Any] = {"last_update_attempt": stamp, "update_errors": ""}
        where = (
            (Catalog.name == key["name"])
            & (Catalog.version == key["version"])
            & (Catalog.catalog_type == key["catalog_type"])
        )
        if not created:
            conn.execute(update(Catalog).where(where).values(**values))
        row = conn.execute(_target_columns().where(where)).one()
    log.info("catalog_created" if created else "attempt_started", catalog_uuid=row.uuid.hex)
    return _to_target(row), created


def _mark(engine: Engine, catalog_uuid: str) -> _Target:
    """Mark an attempt on an existing catalog; UnknownCatalogError if there is none."""
    parsed = parse_uuid(catalog_uuid)
    if parsed is None:
        raise UnknownCatalogError(f"No catalog with uuid {catalog_uuid!r}: not a uuid.")
    with engine.begin() as conn:
        result = conn.execute(
            update(Catalog)
            .where(Catalog.uuid == parsed)
            .values(last_update_attempt=now(), update_errors="")
        )
        if result.rowcount == 0:
            raise UnknownCatalogError(f"No catalog with uuid {parsed.hex}.")
        row = conn.execute(_target_columns().where(Catalog.uuid == parsed)).one()
    log.info("attempt_started")
    return _to_target(row)


def _target_columns() -> Any:
    return select(
        Catalog.id,
        Catalog.uuid,
        Catalog.name,
        Catalog.version,
        Catalog.catalog_type,
        Catalog.source_url,
        Catalog.upstream_validators,
    )


def _to_target(row: Any) -> _Target:
    return _Target(
        id=row.id,
        uuid=row.uuid.hex,
        name=row.name,
        version=row.version,
        catalog_type=row.catalog_type,
        source_url=row.source_url or "",
        validators=dict(row.upstream_validators or {}),
    )


def _record_success(engine: Engine, target: _Target) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Catalog)
            .where(Catalog.id == target.id)
            .values(last_successful_update=now(), update_errors="")
        )
    data_changed()


def _record_failure(
    engine: Engine,
    target: _Target,
    exc: BaseException,
    actor: str,
    stage: str,
    will_retry: bool,
) -> None:
    """Write update_errors (contents untouched) and log the failure. Never raises: the
    original exception is what the caller must see."""
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        return  # the process is stopping; the message will be redelivered
    text = describe_error(exc, stage) + _retry_note(exc, will_retry)
    try:
        with engine.begin() as conn:
            conn.execute(update(Catalog).where(Catalog.id == target.id).values(update_errors=text))
        data_changed()
    except Exception as db_exc:  # the database may be what failed
        log.warning("update_errors_not_written", error=str(db_exc).splitlines()[0])
    _failed(exc, actor, _label(target), stage, will_retry, text=text)


def _failed_before_marking(
    exc: BaseException, actor: str, label: str, stage: str, will_retry: bool
) -> None:
    """A command that failed before it had a catalog row: counted as received here (the
    normal path counts it once the row is marked), so that failed never exceeds received."""
    metrics.COMMANDS_RECEIVED.labels(actor=actor, catalog=label).inc()
    _failed(exc, actor, label, stage, will_retry)


def _failed(
    exc: BaseException,
    actor: str,
    label: str,
    stage: str,
    will_retry: bool,
    *,
    text: str | None = None,
) -> None:
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        return
    will_retry = will_retry and is_transient(exc)
    log.warning(
        "command_failed",
        command=actor,
        stage=stage,
        error_class=type(exc).__name__,
        error=text or describe_error(exc, stage),
        will_retry=will_retry,
    )
    metrics.COMMANDS_FAILED.labels(
        actor=actor, catalog=label, error=type(exc).__name__, will_retry=str(will_retry).lower()
    ).inc()


def _retry_note(exc: BaseException, will_retry: bool) -> str:
    return " (will retry)" if will_retry and is_transient(exc) else ""


def _label(target: _Target) -> str:
    return f"{target.name}/{target.version}"
