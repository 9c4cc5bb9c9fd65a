"""update_errors for a command that is given up without running it (a poison message).

The attempt that killed the worker never wrote its outcome; the next worker, which refuses
to run the message again, writes it here, on the row the message named, so that the catalog
says why its attempt stopped instead of looking "running" for ever.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, false, func, or_, select, update

from syncd.cache_events import data_changed
from syncd.db.tables import Catalog
from syncd.logging import get_logger
from syncd.service.attempts import parse_uuid
from syncd.service.failures import MAX_ERROR_CHARS

log = get_logger(__name__)


def record_abandoned(engine: Engine, actor: str, kwargs: dict[str, Any], text: str) -> bool:
    """Write `text` into update_errors of the catalog the command worked on; whether there
    was one. An update names its row; an import names its adapter and perhaps a version, so
    it gets the row of that name (and version) whose attempt never finished. Never raises:
    the message is dead-lettered either way."""
    try:
        with engine.begin() as conn:
            catalog_id = conn.execute(_target(actor, kwargs)).scalar()
            if catalog_id is None:
                return False
            conn.execute(
                update(Catalog)
                .where(Catalog.id == catalog_id)
                .values(update_errors=text[:MAX_ERROR_CHARS])
            )
    except Exception as exc:  # the database may be down; the log line still says why
        log.warning("update_errors_not_written", error=str(exc).splitlines()[0])
        return False
    data_changed()
    return True


def _target(actor: str, kwargs: dict[str, Any]) -> Any:
    query = select(Catalog.id).limit(1)
    if actor == "update_catalog":
        parsed = parse_uuid(str(kwargs.get("catalog_uuid", "")))
        return query.where(Catalog.uuid == parsed) if parsed else query.where(false())
    name = str(kwargs.get("name", ""))
    query = query.where(func.lower(Catalog.name) == name.lower())
    if kwargs.get("version"):
        query = query.where(Catalog.version == str(kwargs["version"]))
    # The killed attempt marked its row (update_errors cleared, last_update_attempt set)
    # and never stamped an outcome: the "running" state of the package docstring.
    running = (Catalog.update_errors == "") & (
        or_(
            Catalog.last_successful_update.is_(None),
            Catalog.last_successful_update < Catalog.last_update_attempt,
        )
    )
    return query.where(running).order_by(Catalog.last_update_attempt.desc())
