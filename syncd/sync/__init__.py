"""The sync engine: makes one catalog hold exactly one snapshot, the only writer of its contents.
One transaction under the catalog's lock: all or nothing, and unchanged rows are never written.
It does not fetch, retry or record attempts and errors: adapters and the service do.

How a sync runs (sync_catalog in engine.py), in one transaction under the catalog's lock
(syncd/db/locks.py):
1. Stream the snapshot's packages once into temporary staging tables (staging.py;
   PostgreSQL: COPY in batches; SQLite: executemany), computing each row's content hash on
   the way (rows.py). Only the current batch and the set of package names seen are held in
   memory.
2. Diff staging against the catalog's rows with set-based statements (diff.py), top-down for
   writes (packages, versions, targets, parent links: UPDATE where the hash differs, INSERT
   what is missing) and bottom-up for deletes (so every deleted row is counted, none vanishes
   silently through ON DELETE CASCADE). Unchanged rows are never written, so their uuid,
   `created` and `modified` stay as they were.
3. Update the catalog row (description, source_url, metadata, counts, validators, hash)
   only if one of them changed (catalog_row.py).
A first import on PostgreSQL (the catalog has no rows yet: nothing to diff) skips 1. and 2.
and COPYs the rows straight into the tables instead (direct_copy.py): the same rows, hashes
and stats, in less time (bench/README.md: 2.8-3.6 s instead of 3.9 s for Spack).
Readers see the old catalog or the new one: nothing is visible before the commit.
"""

from syncd.sync.engine import sync_catalog

__all__ = ["sync_catalog"]
