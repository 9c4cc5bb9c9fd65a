"""Hand writes: staff creating, editing and deleting packages, versions and targets through
the API. Every one of them goes through `hand_write`, the one place that takes the catalog
lock, writes, tells derived data which packages changed, commits and signals the change.

The rules (README, "HTTP API: staff writes on packages, versions and targets"):
- a row made by hand is local (`is_local`): syncs never update, delete or count it as an
  upstream row (syncd/sync/local_rows.py);
- an edit of an upstream row lasts until upstream changes that row: the edit leaves the row's
  content hash (upstream's) as it was, and a sync rewrites a row only when upstream's hash
  differs from it. The fields that identify an upstream row upstream (a package's name and
  catalog, a version's package, version and module_version, a target's version, type, name
  and subtype) cannot be changed: the next sync would bring the row back under its old
  identity;
- deleting an upstream row lasts until the next sync that reads upstream data, which brings
  it back while upstream still has it.

Hand writes take the catalog's sync lock (syncd/db/locks.py), so a write and a sync of the
same catalog never interleave; counts (the catalog's, a package's) are kept in the same
transaction, as the sync keeps them.
"""

from __future__ import annotations

import uuid as uuid_module
from collections import defaultdict
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, select

from syncd import cache_events
from syncd.db import statement_timeout
from syncd.db.locks import catalog_transaction, lock_catalog
from syncd.db.tables import Package
from syncd.errors import TransientError
from syncd.logging import get_logger
from syncd.readmodel import refresh_read_model, with_parents
from syncd.service.hand_write_rows import (
    Action,
    CatalogsMoved,
    HandWrite,
    Kind,
    RowNotFound,
    WriteRefused,
    apply_write,
    involved_catalogs,
)
from syncd.sync.versions_hash import forget as forget_versions_hashes

log = get_logger(__name__)

# How long a hand write waits for a sync of the same catalog to finish its transaction (the
# diff: seconds for a whole catalog) before the API answers 503.
HAND_WRITE_LOCK_SECONDS = 15.0
# Another hand write may move the rows between reading which catalogs to lock and locking
# them; then the catalogs are read again.
_ATTEMPTS = 3

__all__ = [
    "HAND_WRITE_LOCK_SECONDS",
    "Action",
    "HandWrite",
    "Kind",
    "RowNotFound",
    "WriteRefused",
    "hand_write",
    "refresh_derived",
]


def refresh_derived(conn: Connection, package_ids: AbstractSet[int]) -> None:
    """Data derived from packages' stored rows, brought up to date after a hand write, in its
    transaction. `package_ids`: the packages (that still exist) whose own row, versions,
    targets, parents or extensions the write changed: their list fragments are rendered
    again, with their parents' (which name their versions; a move touches two catalogs), and
    their filter values and search text (syncd/readmodel/facets.py)."""
    by_catalog: dict[int, list[int]] = defaultdict(list)
    ids = sorted(with_parents(conn, package_ids))
    for start in range(0, len(ids), 5000):
        rows = conn.execute(
            select(Package.catalog_id, Package.id).where(Package.id.in_(ids[start : start + 5000]))
        )
        for catalog_id, package_id in rows:
            by_catalog[int(catalog_id)].append(int(package_id))
    for catalog_id, found in sorted(by_catalog.items()):
        refresh_read_model(conn, catalog_id, found)


@contextmanager
def _locked(engine: Engine, catalog_ids: AbstractSet[int], timeout: float) -> Iterator[Connection]:
    """One transaction holding the sync lock of every catalog in `catalog_ids` (taken in id
    order, so two writes never wait for each other in a circle). SQLite's write lock covers
    the whole database already."""
    first, *others = sorted(catalog_ids)
    with catalog_transaction(engine, first, timeout=timeout) as conn:
        if engine.dialect.name != "sqlite":
            for other in others:
                lock_catalog(conn, other, timeout=timeout)
        yield conn


def hand_write(
    engine: Engine, write: HandWrite, *, lock_timeout: float | None = None
) -> uuid_module.UUID | None:
    """Make `write`; the uuid of the row written (None for a delete).

    Raises RowNotFound (no such row), WriteRefused (field, DRF-worded message: the write is
    invalid against the stored data), LockBusyError (a sync held the catalog for longer than
    `lock_timeout`, default HAND_WRITE_LOCK_SECONDS) or TransientError.
    """
    if lock_timeout is None:
        lock_timeout = HAND_WRITE_LOCK_SECONDS
    for _ in range(_ATTEMPTS):
        catalogs = involved_catalogs(engine, write)
        try:
            with _locked(engine, catalogs, lock_timeout) as conn:
                if write.action is Action.DELETE:
                    # A package's versions and targets go with it (ON DELETE CASCADE).
                    statement_timeout.lift(conn)
                outcome = apply_write(conn, write, catalogs)
                # The next sync compares upstream with these packages' rows again in full.
                forget_versions_hashes(conn, outcome.changed_packages)
                refresh_derived(conn, outcome.changed_packages)
        except CatalogsMoved:
            continue
        cache_events.data_changed()  # committed: in-process caches start over
        written = outcome.uuid or write.uuid  # a delete names its row; a create returns it
        assert written is not None
        log.info(
            "hand_write",
            kind=str(write.kind),
            action=str(write.action),
            uuid=written.hex,
            fields=sorted(write.values),
        )
        return outcome.uuid
    raise TransientError("The rows moved to another catalog while being written; try again.")
