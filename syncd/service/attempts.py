"""The stamps an attempt leaves on its catalog row: marked, succeeded, failed.

The row alone tells an attempt's state (see the package docstring), so these writes are
committed on their own, before and after the slow work, never inside the sync's transaction.
"""

from __future__ import annotations

import uuid as uuid_module
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from syncd.cache_events import data_changed
from syncd.db.tables import Catalog
from syncd.domain import SyncStats
from syncd.errors import UnknownCatalogError
from syncd.logging import get_logger
from syncd.metrics import catalog_label
from syncd.service.failures import _failed, _retry_note, describe_error, describe_warnings

log = get_logger(__name__)


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
    # The fields an operator may also edit, as read here, before the fetch: the sync keeps
    # any of them that differs from this when it commits (an operator's edit meanwhile).
    operator_fields: dict[str, Any]
    snapshot_time: datetime | None  # when upstream made the data the catalog holds


def now() -> datetime:
    return datetime.now(UTC)


def parse_uuid(value: str) -> uuid_module.UUID | None:
    try:
        return uuid_module.UUID(str(value).strip())
    except ValueError:
        return None


def _insert(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        return postgresql.insert(Catalog)
    return sqlite.insert(Catalog)


def _create_or_mark(
    engine: Engine,
    adapter: Any,
    version: str,
    source: str | None,
    catalog_uuid: uuid_module.UUID | None = None,
) -> tuple[_Target, bool]:
    """Make the catalog row if it is not there, and mark this attempt on it, in one
    transaction. ON CONFLICT DO NOTHING on the unique (lower(name), version, catalog_type)
    (and any other unique index): of two racing imports one inserts, the other finds the row;
    neither fails. A row whose name differs only in case (made by hand) is that catalog.
    `catalog_uuid`: the uuid a new row gets (a portable catalog's, `--keep-uuids`); an
    existing row keeps its own."""
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
                uuid=catalog_uuid or uuid_module.uuid4(),
                source_url=source or "",
                last_update_attempt=stamp,
                update_errors="",
            )
            .on_conflict_do_nothing()
            .returning(Catalog.id)
        )
        # RETURNING yields the row only when this INSERT made it (rowcount is not reliable
        # across drivers for INSERT ... ON CONFLICT).
        created = inserted.first() is not None
        values: dict[str, Any] = {"last_update_attempt": stamp, "update_errors": ""}
        where = same_catalog(key["name"], key["version"], key["catalog_type"])
        if not created:
            conn.execute(update(Catalog).where(where).values(**values))
        row = conn.execute(_target_columns().where(where)).one()
    log.info("catalog_created" if created else "attempt_started", catalog_uuid=row.uuid.hex)
    return _to_target(row), created


def same_catalog(name: str, version: str, catalog_type: str) -> Any:
    """The WHERE clause of the catalog (name, version, type), names compared as the unique
    index on lower(name) compares them (migration 0009)."""
    return (
        (func.lower(Catalog.name) == func.lower(name))
        & (Catalog.version == version)
        & (Catalog.catalog_type == catalog_type)
    )


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
        Catalog.description,
        Catalog.metadata_.label("catalog_metadata"),
        Catalog.upstream_snapshot_at,
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
        operator_fields={
            "description": row.description,
            "source_url": row.source_url,
            "metadata": row.catalog_metadata,
            "version": row.version,
        },
        snapshot_time=row.upstream_snapshot_at,
    )


def _record_success(engine: Engine, target: _Target, stats: SyncStats | None) -> None:
    """Stamp the success; update_errors stays empty unless the sync left upstream data out
    or stored it altered (`SyncStats.warnings`): an operator is told what and where."""
    with engine.begin() as conn:
        conn.execute(
            update(Catalog)
            .where(Catalog.id == target.id)
            .values(last_successful_update=now(), update_errors=describe_warnings(stats))
        )
    data_changed()


def _record_failure(
    engine: Engine,
    target: _Target,
    exc: BaseException,
    actor: str,
    stage: str,
    will_retry: bool,
) -> str | None:
    """Write update_errors (contents untouched) and log the failure; returns the text
    written (None: the process is stopping, nothing was). Never raises: the original
    exception is what the caller must see."""
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        return None  # the process is stopping; the message will be redelivered
    text = describe_error(exc, stage) + _retry_note(exc, will_retry)
    try:
        with engine.begin() as conn:
            conn.execute(update(Catalog).where(Catalog.id == target.id).values(update_errors=text))
        data_changed()
    except Exception as db_exc:  # the database may be what failed
        log.warning("update_errors_not_written", error=str(db_exc).splitlines()[0])
    _failed(exc, actor, _label(target), stage, will_retry, text=text)
    return text


def _label(target: _Target) -> str:
    return catalog_label(target.name, target.version)
