"""What the catalog write routes do, as plain functions of a session and settings: find a
catalog, validate and save fields, and put import/update commands on the queue. The routes in
routes_catalogs.py only parse the request and call these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.fetch import check_source_allowed
from syncd.api import errors, representation
from syncd.api.deps import ApiContext
from syncd.api.schemas import CatalogCreate, ImportRequest
from syncd.api.url_field import INVALID_URL, is_valid_url
from syncd.config import Settings
from syncd.db import statement_timeout
from syncd.db.tables import Catalog
from syncd.domain import CatalogType
from syncd.errors import PermanentError, TransientError
from syncd.events.outbox import write_event
from syncd.logging import get_logger
from syncd.names import same_name
from syncd.publish import publish_import, publish_update
from syncd.redaction import keep_stored_credentials, redact_urls

log = get_logger(__name__)


def get_catalog(session: Session, text: str) -> Catalog:
    value = representation.parse_uuid(text)
    row = (
        None
        if value is None
        else session.execute(select(Catalog).where(Catalog.uuid == value)).scalar_one_or_none()
    )
    if row is None:
        raise errors.not_found()
    return row


def check_source(url: str | None, settings: Settings, field: str = "source_url") -> None:
    """A text that is no URL is DRF URLField's 400; a source the fetcher would refuse
    (scheme, private network, file://) is a 400 now rather than a failed import later."""
    if not url:
        return
    if not is_valid_url(url):
        raise errors.field_error(field, INVALID_URL)
    try:
        check_source_allowed(url, settings)
    except PermanentError as exc:
        raise errors.field_error(field, exc.message) from None


def _same_name(session: Session, name: str, catalog_type: str) -> list[Catalog]:
    """The catalogs of this type whose name is `name` as syncd.names compares names
    (normalised, case-insensitive). Compared here rather than with SQL lower(), which folds
    only ASCII on SQLite; the unique index on lower(name) is the database's backstop."""
    rows = session.execute(select(Catalog).where(Catalog.catalog_type == catalog_type))
    return [row for row in rows.scalars() if same_name(row.name, name)]


def _find(session: Session, name: str, version: str, catalog_type: str) -> Catalog | None:
    found = [row for row in _same_name(session, name, catalog_type) if row.version == version]
    return found[0] if found else None


def _ensure_unique(session: Session, row: Catalog) -> None:
    other = _find(session, row.name, row.version, row.catalog_type)
    if other is not None and other.id != row.id:
        raise errors.field_error("non_field_errors", errors.UNIQUE_CATALOG)


def _reject_nulls(body: BaseModel) -> None:
    # Fields are optional, not nullable: DRF refuses an explicit null, metadata included
    # (Waldur's metadata is a JSONField with null=False).
    for field in body.model_fields_set:
        if getattr(body, field) is None:
            raise errors.field_error(field, "This field may not be null.")


def apply_fields(row: Catalog, body: BaseModel, settings: Settings) -> None:
    _reject_nulls(body)
    values = {field: getattr(body, field) for field in body.model_fields_set}
    if values.get("source_url") and row.source_url:
        # A client that read the catalog (credentials shown as ***) and writes it back.
        values["source_url"] = keep_stored_credentials(values["source_url"], row.source_url)
    check_source(values.get("source_url"), settings)
    for field, value in values.items():
        if field == "metadata":
            row.metadata_ = value
        elif field == "catalog_type":
            row.catalog_type = CatalogType(value).value
        else:
            setattr(row, field, value)


def save_catalog(
    session: Session, row: Catalog, *, before_commit: Callable[[], None] | None = None
) -> None:
    """Commit `row`; `before_commit` runs in the same transaction once the row is flushed
    (its uuid and timestamps set): an event written there exists exactly when the row does."""
    with session.no_autoflush:  # check before the new values reach the database
        _ensure_unique(session, row)
    try:
        if before_commit is not None:
            session.flush()
            before_commit()
        session.commit()
    except IntegrityError:
        # A concurrent writer won the race between the check above and the commit.
        session.rollback()
        raise errors.field_error("non_field_errors", errors.UNIQUE_CATALOG) from None


def _event_catalog(row: Catalog) -> dict[str, Any]:
    return {"name": row.name, "version": row.version, "uuid": row.uuid}


def create_catalog(
    session: Session, settings: Settings, body: CatalogCreate, *, base: str
) -> Catalog:
    """Insert the catalog and its `catalog.created` event (docs/events.md) in one transaction;
    the event's payload is the catalog as the API shows it (`base`: the API's base URL)."""
    row = Catalog(
        name=body.name,
        version=body.version,
        catalog_type=body.catalog_type.value,
        metadata_={},
    )
    apply_fields(row, body, settings)
    session.add(row)

    def announce() -> None:
        payload = representation.catalog(base, row)
        write_event(session.connection(), "catalog.created", _event_catalog(row), payload)

    save_catalog(session, row, before_commit=announce)
    return row


def delete_catalog(session: Session, row: Catalog) -> None:
    """Delete the catalog and write its `catalog.deleted` event in one transaction."""
    payload = {"catalog_type": row.catalog_type, "source_url": redact_urls(row.source_url)}
    write_event(session.connection(), "catalog.deleted", _event_catalog(row), payload)
    # ON DELETE CASCADE removes packages, versions, targets and parent links in the database:
    # for a whole EESSI stack that may rightly take longer than a read is allowed.
    statement_timeout.lift(session.connection())
    session.execute(delete(Catalog).where(Catalog.id == row.id))
    session.commit()


def enqueue_update(
    ctx: ApiContext, session: Session, text: str, *, force: bool = False
) -> dict[str, str]:
    row = get_catalog(session, text)
    adapter = ctx.adapters.get(row.name)
    if adapter is None or str(adapter.catalog_type) != row.catalog_type:
        raise errors.general_error(
            f"No loader configuration found for {row.name} ({row.catalog_type})."
        )
    session.close()  # release the connection before waiting for the broker
    try:
        publish_update(
            ctx.broker, ctx.settings, catalog_uuid=row.uuid.hex, force=force, trigger="api"
        )
    except TransientError as exc:
        raise errors.unavailable(
            f"The update was not confirmed as queued; try again: {exc.message}"
        ) from None
    return {"status": "updating", "catalog_uuid": row.uuid.hex}


def _check_offered(ctx: ApiContext, adapter: Any, version: str) -> None:
    """A version the default upstream does not list is a 400 now, not an empty catalog later
    (the worker checks again against what it downloads). Asked of the cached discover; an
    upstream that cannot be asked now is left to the worker."""
    offered = ctx.discover_cache.versions(adapter, ctx.fetcher)
    if offered and version not in offered:
        reason = (
            f"{adapter.name} upstream offers no version {version!r} "
            f"(it offers: {', '.join(offered)})."
        )
        log.warning("import_refused", name=adapter.name, version=version, reason=reason)
        raise errors.field_error("version", reason)


def _adapter(ctx: ApiContext, name: str) -> Any:
    """The registered adapter called `name` (as syncd.names compares names); a 400 naming
    the registered ones when there is none."""
    for key, adapter in ctx.adapters.items():
        if same_name(key, name):
            return adapter
    known = ", ".join(sorted(ctx.adapters)) or "none"
    raise errors.field_error("name", f'"{name}" is not a registered adapter. Registered: {known}.')


def _check_new(session: Session, adapter: Any, body: ImportRequest) -> None:
    """Waldur's rule for its body (no version): a catalog of this name and type must not
    exist yet. syncd's extension: a body naming a version that does not exist yet imports
    that version as another catalog of the name (README, "import_catalog")."""
    catalog_type = str(adapter.catalog_type)
    if body.version is None:
        if _same_name(session, adapter.name, catalog_type):
            raise errors.general_error(
                f"A catalog with name={adapter.name} and type={catalog_type} already exists."
            )
        return
    if _find(session, adapter.name, body.version, catalog_type) is not None:
        raise errors.general_error(
            f"Catalog {adapter.name} {body.version} ({catalog_type}) already exists; "
            "refresh it with update_catalog instead."
        )


def enqueue_import(ctx: ApiContext, session: Session, body: ImportRequest) -> dict[str, Any]:
    adapter = _adapter(ctx, body.name)
    source = body.source_url or body.source
    check_source(source, ctx.settings, "source_url" if body.source_url else "source")
    _check_new(session, adapter, body)
    if body.version is not None and source is None:
        _check_offered(ctx, adapter, body.version)
    session.close()
    try:
        publish_import(
            ctx.broker,
            ctx.settings,
            name=adapter.name,
            version=body.version,
            source=source,
            force=body.force,
            trigger="api",
        )
    except TransientError as exc:
        raise errors.unavailable(
            f"The import was not confirmed as queued; try again: {exc.message}"
        ) from None
    # Waldur's answer is exactly {"status", "name"}; `version` is ours, there only when asked for.
    answer: dict[str, Any] = {"status": "importing", "name": adapter.name}
    if body.version is not None:
        answer["version"] = body.version
    return answer
