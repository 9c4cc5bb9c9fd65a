"""The stale-snapshot guard: an update must not roll a catalog back to older upstream data.

A stale mirror or CDN node can serve yesterday's file after today's was synced; without this
check the sync would faithfully replace the newer catalog with it. The snapshot time is what
the adapter read from the data (EESSI `timestamp`, Spack `last_update`), else the newest
Last-Modified of the files (HTTP header, or the mtime of a file:// source). It is compared
here, before the sync, and stored by the sync with the data (catalog.upstream_snapshot_at).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from adapters.fetch import newest_last_modified
from syncd.domain import CatalogSnapshot
from syncd.errors import StaleSnapshotError


def with_snapshot_time(snapshot: CatalogSnapshot) -> CatalogSnapshot:
    """`snapshot` with its snapshot time settled (the Last-Modified fallback applied), in
    UTC and to the second: HTTP dates have no finer grain, and the refusal names both times
    in seconds, so a comparison finer than what it shows would read as nonsense."""
    stamp = snapshot.catalog.snapshot_time or newest_last_modified(snapshot.validators)
    if stamp is not None:
        stamp = _second(stamp)
    catalog = dataclasses.replace(snapshot.catalog, snapshot_time=stamp)
    return dataclasses.replace(snapshot, catalog=catalog)


def refuse_older(new: datetime | None, stored: datetime | None, *, force: bool) -> None:
    """StaleSnapshotError when the new snapshot is older than the stored one (an equal time
    is a republish and passes); `force` accepts it, and an unknown time passes too."""
    if force or new is None or stored is None or _second(new) >= _second(stored):
        return
    raise StaleSnapshotError(
        f"Refused: upstream snapshot {_iso(new)} is older than the stored {_iso(stored)} "
        "(a stale mirror or CDN node?); the catalog keeps its data. To roll it back to the "
        'older snapshot on purpose, repeat the command with --force ("force": true in the '
        "message or request body)."
    )


def _second(value: datetime) -> datetime:
    # A naive time is UTC (SQLite reads timestamps back without their zone).
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=0)


def _iso(value: datetime) -> str:
    return _second(value).strftime("%Y-%m-%dT%H:%M:%SZ")
