"""An import that would create a catalog first checks that upstream offers the version it
names: a mistyped version must not leave an empty catalog behind (auto-update on, failing
every day) that a retry then refuses as "already exists".

The check is the download itself: the snapshot is fetched before the row is made, and the row
is made only when the snapshot holds the version asked for. Nothing is downloaded twice: the
attempt syncs that snapshot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from syncd.db.tables import Catalog
from syncd.domain import CatalogSnapshot
from syncd.errors import SyncdError, VersionNotOfferedError
from syncd.logging import get_logger
from syncd.service.running import _fetch

log = get_logger(__name__)


def _fetch_if_new(
    engine: Engine, adapter: Any, fetcher: Any, version: str, source: str | None
) -> CatalogSnapshot | None:
    """The snapshot of `version` when no catalog holds it yet, fetched before any row exists;
    None when the catalog exists (its attempt fetches with the row's validators).

    Raises VersionNotOfferedError when upstream does not offer `version`; any permanent
    failure here is logged as `import_refused`, since no catalog row exists to record it.
    """
    if _exists(engine, adapter, version):
        return None
    try:
        snapshot = _fetch(adapter, fetcher, version, source or "", {})
        if snapshot is not None and snapshot.catalog.version != version:
            _close(snapshot)
            where = source or adapter.default_source()
            raise VersionNotOfferedError(
                f"{adapter.name} upstream at {where} offers {snapshot.catalog.version}, not "
                f"{version}: no catalog was created."
            )
    except SyncdError as exc:
        if not exc.transient:
            log.warning("import_refused", name=adapter.name, version=version, reason=exc.message)
        raise
    return snapshot


def _exists(engine: Engine, adapter: Any, version: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            select(Catalog.id).where(
                Catalog.name == adapter.name,
                Catalog.version == version,
                Catalog.catalog_type == str(adapter.catalog_type),
            )
        ).first()
    return found is not None


def _close(snapshot: CatalogSnapshot) -> None:
    # A streaming snapshot holds the downloaded files open until its generator ends.
    close = getattr(snapshot.packages, "close", None)
    if callable(close):
        close()
