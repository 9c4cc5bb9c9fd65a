"""First import on PostgreSQL: with nothing to diff against, staging would copy every row twice,
so rows are COPYed straight into the tables (ids reserved, COPY on a thread of its own).
"""

from __future__ import annotations

import os
import queue
import threading
from datetime import datetime
from typing import Any

import psycopg
from psycopg._copy_base import format_row_text  # the encoder copy.write_row uses
from psycopg.adapt import Transformer
from sqlalchemy import Connection

from syncd.domain import CatalogSnapshot, SyncStats
from syncd.sync.records import _keep, _kept_packages, _Staged
from syncd.sync.rows import BATCH_ROWS, _package_row, _target_row, _version_row, given_uuid
from syncd.sync.versions_hash import versions_hash

# ---------------------------------------------------------------------------------------
# First import on PostgreSQL: straight into the tables
#
# A catalog without package rows has nothing to diff against, so staging would only copy
# every row twice. Instead rows are COPYed into package/version/target as the stream is
# read, with ids taken from the tables' sequences (nextval hands each value out once, to
# whichever session asks: safe next to other catalogs' syncs; unused ones are gaps, as
# after a rollback). Same transaction and lock as the staged path: readers see nothing
# until the commit. Parent links and extension counts need every package's id, so they
# are written at the end from the names held in memory (one int per package).
# ---------------------------------------------------------------------------------------
_DIRECT_COLUMNS = {
    "package": "id, uuid, created, modified, catalog_id, name, description, homepage, "
    "categories, licenses, maintainers, metadata, is_extension, content_hash, version_count, "
    "versions_hash, extension_count",
    "version": "id, uuid, created, modified, package_id, catalog_id, version, module_version, "
    "release_date, dependencies, metadata, sort_index, content_hash",
    "target": "id, uuid, created, modified, version_id, catalog_id, target_type, target_name, "
    "target_subtype, location, metadata, gpu_architectures, content_hash",
    "package_parent": "package_id, parent_id, catalog_id",
}
# Version-4 uuids: 16 random bytes with the version nibble set to 4 and the variant to 10xx,
# as 32 hex digits (a form PostgreSQL parses). Drawn from os.urandom in blocks: one system
# call per row would cost ~1 s at ~100k rows (each one gives up the interpreter lock while
# the COPY thread holds it), uuid.uuid4() ~2.5x more than this.
_UUID_KEEP = ((1 << 128) - 1) & ~(0xF << 76) & ~(0x3 << 62)
_UUID_SET = (0x4 << 76) | (0x2 << 62)


class _Uuids:
    def __init__(self) -> None:
        self._free: list[str] = []

    def take(self) -> str:
        if not self._free:
            raw = os.urandom(16 * BATCH_ROWS)
            self._free = [
                "%032x" % (int.from_bytes(raw[i : i + 16]) & _UUID_KEEP | _UUID_SET)
                for i in range(0, len(raw), 16)
            ]
        return self._free.pop()


class _Ids:
    """Ids of one table, reserved from its sequence in blocks that double up to 32,768: few
    round trips (each may wait for the COPY in flight on the connection), and at most half
    of the last block left unused (gaps, as after a rollback: harmless in a bigint)."""

    def __init__(self, cur: Any, table: str) -> None:
        self._cur = cur
        self._sql = (
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)"
        )
        self._block = BATCH_ROWS
        self._free: list[int] = []

    def take(self) -> int:
        if not self._free:
            self._cur.execute(self._sql, (self._block,))
            self._free = [row[0] for row in self._cur.fetchall()]
            self._free.reverse()  # pop() from the end hands them out in ascending order
            self._block = min(self._block * 2, 32768)
        return self._free.pop()


# A batch: each table's rows already in COPY text form.
_Batch = dict[str, bytearray]
# Rows per batch: four times what staging writes per statement. Each COPY's start and end
# wake the sender thread, which must then win the interpreter lock from the busy reading
# thread while the server waits for it: fewer, larger COPYs leave the server idle less
# often. At most three batches are held (~2 MB each for Spack).
DIRECT_BATCH_ROWS = 4 * BATCH_ROWS


class _Sender:
    """COPYs batches from a thread of its own, so that PostgreSQL inserts one batch while
    Python reads and encodes the next: done in turn, the two costs add up, because every
    COPY ends waiting for the server. Batches go in order and each one's tables parents
    first, so the foreign keys (checked row by row) always find their parent rows. The
    queue is bounded: at most three batches are held, whatever the snapshot's size.

    The rows are encoded by the caller, and this thread only hands bytes to libpq: Python
    code here would need the interpreter lock, which the busy reading thread gives up only
    every few milliseconds, and the server would starve."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="syncd-copy", daemon=True)
        self._thread.start()

    def send(self, batch: _Batch) -> None:
        self.raise_error()
        self._queue.put(batch)

    def join(self) -> None:
        """Wait until every batch is sent (or dropped after an error): the connection must be
        idle before the transaction goes on, commits or rolls back."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        with self._raw.cursor() as cur:
            while (batch := self._queue.get()) is not None:
                if self._error is not None:
                    continue  # the transaction is lost: drop what is left
                try:
                    for table, data in batch.items():
                        if data:
                            sql = f"COPY {table} ({_DIRECT_COLUMNS[table]}) FROM STDIN"
                            with cur.copy(sql) as copy:
                                copy.write(data)
                except BaseException as exc:  # raised in the caller's thread
                    self._error = exc


def _new_batch() -> _Batch:
    return {table: bytearray() for table in _DIRECT_COLUMNS}


def _direct_import(
    conn: Connection,
    catalog_id: int,
    snapshot: CatalogSnapshot,
    now: datetime,
    max_field_chars: int,
) -> tuple[_Staged, SyncStats, int]:
    """Write `snapshot` into the empty catalog; returns what the staged path would: what was
    written, the stats (all created) and the unknown parent count."""
    raw: Any = conn.connection.driver_connection
    staged = _Staged(max_field_chars=max_field_chars)
    stamp = now.isoformat()  # text: cheaper to send than a datetime per row and column
    ids: dict[str, int] = {}  # package name -> id, for the parent links
    links: list[tuple[int, str]] = []  # (child id, parent name)
    new_uuid = _Uuids().take
    # put(row, batch[table]) encodes a row with psycopg's own COPY text encoder (what
    # copy.write_row calls), in this thread: see _Sender.
    encoder = Transformer.from_context(raw)

    def put(row: tuple[Any, ...], out: bytearray) -> None:
        format_row_text(row, encoder, out)

    with raw.cursor() as cur:
        package_ids, version_ids, target_ids = (
            _Ids(cur, table) for table in ("package", "version", "target")
        )
        sender = _Sender(raw)
        try:
            batch = _new_batch()
            versions_out, targets_out = batch["version"], batch["target"]
            pending = 0
            for package in _kept_packages(snapshot, staged):
                name = package.name
                homepage, versions, parents = _keep(staged, package)
                package_id = ids[name] = package_ids.take()
                # The package's row first: its versions may then go in later batches, so
                # one package of 100,000 versions is never held encoded whole.
                row = _package_row(package, homepage, len(versions), staged)
                put(
                    (
                        package_id,
                        given_uuid(package.uuid) or new_uuid(),
                        stamp,
                        stamp,
                        catalog_id,
                        *row,
                        versions_hash(versions, max_field_chars)[0],
                        0,
                    ),
                    batch["package"],
                )
                links.extend((package_id, parent) for parent in parents)
                pending += 1
                for sort_index, version in enumerate(versions):
                    version_id = version_ids.take()
                    row = _version_row(name, version, sort_index, staged)
                    put(
                        (
                            version_id,
                            given_uuid(version.uuid) or new_uuid(),
                            stamp,
                            stamp,
                            package_id,
                            catalog_id,
                            *row[1:],
                        ),
                        versions_out,
                    )
                    for target in version.targets:
                        row = _target_row(name, version, target, staged)
                        target_id = target_ids.take()
                        put(
                            (
                                target_id,
                                given_uuid(target.uuid) or new_uuid(),
                                stamp,
                                stamp,
                                version_id,
                                catalog_id,
                                *row[3:],
                            ),
                            targets_out,
                        )
                    pending += 1 + len(version.targets)
                    # Batches go in order, each one's package rows first (_DIRECT_COLUMNS):
                    # a version's package row is always sent no later than the version.
                    if pending >= DIRECT_BATCH_ROWS:
                        sender.send(batch)
                        batch = _new_batch()
                        versions_out, targets_out = batch["version"], batch["target"]
                        pending = 0
            # As the staged path: links to packages the snapshot does not hold are left
            # out, and a package's extension_count is the number of packages naming it.
            extensions: dict[int, int] = {}  # parent id -> links to it
            for child_id, parent in links:
                parent_id = ids.get(parent)
                if parent_id is not None:
                    put((child_id, parent_id, catalog_id), batch["package_parent"])
                    extensions[parent_id] = extensions.get(parent_id, 0) + 1
            sender.send(batch)
        except psycopg.Error:
            # A failed COPY aborts the transaction, and what fails next here says only
            # that: report the COPY's own error.
            sender.join()
            sender.raise_error()
            raise
        finally:
            sender.join()  # also when reading failed: that error propagates unchanged
        sender.raise_error()
        if extensions:
            cur.execute(
                "UPDATE package SET extension_count = x.n "
                "FROM unnest(%s::bigint[], %s::integer[]) AS x(id, n) WHERE package.id = x.id",
                (list(extensions), list(extensions.values())),
            )
    resolved = sum(extensions.values())
    staged.parent_links = resolved
    stats = SyncStats()
    stats.packages.created = staged.packages
    stats.versions.created = staged.versions
    stats.targets.created = staged.targets
    stats.parent_links.created = resolved
    return staged, stats, len(links) - resolved
