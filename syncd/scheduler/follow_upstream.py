"""Follow upstream: new upstream versions become new catalogs, enqueued by the tick.

Apart from the due pass because it talks to adapters (plugins, network) and creates rows,
where the due pass only reads the catalog table; a failure here must not stop the tick.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from syncd.config import Settings
from syncd.db.tables import Catalog
from syncd.scheduler.enqueue import _mark_enqueued, _publish
from syncd.scheduler.results import NOT_TRIED, CatalogRef, TickResult

if TYPE_CHECKING:
    import dramatiq

# --- follow upstream -----------------------------------------------------------------------
#
# Choice: the scheduler creates the new catalog row itself (name, version and catalog_type
# from the adapter, auto_update_enabled and source_url copied from the newest existing
# catalog of that name; the insert is guarded by the unique constraint) and then publishes
# update_catalog for it, whose first run fills it. Publishing import_catalog instead would
# leave the worker to create the row with the default auto_update_enabled, and copying the
# flag would need a message field the contract does not have. That first update is how the
# new catalog is imported, so it is enqueued even when the copied flag is false; later ticks
# leave such a catalog alone like every disabled one. If the publish fails the empty row is
# deleted again, so the next tick retries the whole step.
#
# Discover asks the source of the latest-made catalog of that name (a mirror, say). Only
# versions that upstream lists *above* a version we already have are new. An adapter
# with no catalog in the database is not followed (the site never imported it), and neither
# is one whose upstream list contains none of our versions: an upstream with a single moving
# version label (Spack) is kept current by update_catalog, not by a new catalog per label.


def _follow_upstream(
    engine: Engine,
    broker: dramatiq.Broker,
    settings: Settings,
    now: datetime,
    adapters: Mapping[str, Any] | None,
    fetcher: Any,
    result: TickResult,
) -> None:
    own_fetcher = None
    try:
        if adapters is None:
            from adapters.base import load_adapters

            adapters = load_adapters(settings)
        if fetcher is None:
            from adapters.fetch import Fetcher

            fetcher = own_fetcher = Fetcher(settings)
        for adapter in adapters.values():
            if result.broker_unavailable:
                # Discovering would download upstream lists for catalogs nobody can enqueue.
                result.not_followed[adapter.name] = NOT_TRIED
                continue
            reason = _follow_one(engine, broker, settings, now, adapter, fetcher, result)
            if reason:
                result.not_followed[adapter.name] = reason
    except Exception as exc:  # adapters are plugins: a broken one must not stop the tick
        result.not_followed["*"] = f"follow upstream failed: {type(exc).__name__}: {exc}"
    finally:
        if own_fetcher is not None:
            own_fetcher.close()


def _follow_one(
    engine: Engine,
    broker: dramatiq.Broker,
    settings: Settings,
    now: datetime,
    adapter: Any,
    fetcher: Any,
    result: TickResult,
) -> str | None:
    """Create and enqueue catalogs for new upstream versions; the reason when it did not."""
    catalog_type = str(adapter.catalog_type)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Catalog.version, Catalog.auto_update_enabled, Catalog.source_url)
            .where(Catalog.name == adapter.name, Catalog.catalog_type == catalog_type)
            .order_by(Catalog.id)
        ).all()
    existing = {row.version: row for row in rows}
    if not existing:
        return "no catalog of this name"
    try:
        # Ask where our catalogs come from (an air-gapped site's file:// mirror, say), not
        # necessarily the adapter's default.
        versions = list(adapter.discover(fetcher, source=rows[-1].source_url or None))
    except Exception as exc:
        return f"discover failed: {exc}"
    listed = [v for v in versions if v in existing]
    if not listed:
        return "upstream lists none of our versions"
    newest = existing[listed[0]]
    new_versions = versions[: versions.index(listed[0])]
    for version in reversed(new_versions):  # oldest first: the newest row is created last
        if result.broker_unavailable:
            return NOT_TRIED  # the versions left are created by a later tick
        ref = _create_catalog(engine, adapter.name, version, catalog_type, newest)
        if ref is None:
            continue  # created meanwhile by someone else (an import through the API, ...)
        if _publish(broker, settings, ref, result):
            result.created.append(ref)
            _mark_enqueued(engine, ref.uuid, now)
        else:
            _delete_unattempted(engine, ref.uuid)
    return None


def _create_catalog(
    engine: Engine, name: str, version: str, catalog_type: str, newest: Any
) -> CatalogRef | None:
    new_uuid = uuid_module.uuid4()
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Catalog).values(
                    uuid=new_uuid,
                    name=name,
                    version=version,
                    catalog_type=catalog_type,
                    auto_update_enabled=newest.auto_update_enabled,
                    source_url=newest.source_url,
                )
            )
    except IntegrityError:
        return None
    return CatalogRef(uuid=str(new_uuid), name=name, version=version)


def _delete_unattempted(engine: Engine, catalog_uuid: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            delete(Catalog).where(
                Catalog.uuid == uuid_module.UUID(catalog_uuid),
                Catalog.last_update_attempt.is_(None),
            )
        )
