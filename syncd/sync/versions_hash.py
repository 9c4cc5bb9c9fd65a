"""Each package's versions hash: a refresh stages the versions and targets of changed packages
only (issue 16).

A package's versions hash covers its kept version and target records in the order the sync
writes them (a version's position is its sort_index), and the field limit, so it changes when
any of them is added, removed, moved or changed. The sync stores it in
`package.versions_hash` with the rows it describes. The next refresh reads the catalog's
stored hashes once (one short row per package); a package whose new hash equals the stored
one has its own row staged as always (its row, counts and parent links are diffed as
before), but not its versions and targets: they are `skipped`, and every statement that would
delete or count rows the snapshot no longer lists leaves a skipped package's rows alone.

NULL is unknown, and a package with an unknown hash is staged in full: after migration 0024,
for a package holding rows made through the API (their twins and positions are worked out
from staging: syncd/sync/local_rows.py), and after any hand write to a package (forget).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from hashlib import blake2b

from sqlalchemy import Connection, bindparam, text

from syncd.domain import VersionRecord
from syncd.errors import TransientError

# name -> (package id, stored versions hash)
StoredHashes = Mapping[str, tuple[int, str]]

_STORED = """
SELECT name, id, versions_hash FROM package
WHERE catalog_id = :c AND versions_hash IS NOT NULL
"""
# Rows of skipped packages are kept. The shrink guard counts a version as kept when its
# package is skipped (alias: the version's); the diff's deletes and the change tracker read
# the versions and targets of the packages in play only (fill_in_play).
_SKIPPED_VERSION = (
    "EXISTS (SELECT 1 FROM stage_package AS k WHERE k.skipped AND k.package_id = {v}.package_id)"
)
# The catalog's packages but the skipped ones: EXCEPT is a set operation, planned as such
# whatever the statistics say (the tables' statistics can be missing right after an import,
# and an anti-join then planned as a nested loop over the staging table took 20 s).
_FILL_IN_PLAY = """
INSERT INTO stage_in_play (package_id)
SELECT id FROM package WHERE catalog_id = :c
EXCEPT SELECT package_id FROM stage_package WHERE skipped
"""
_IN_PLAY_VERSION = "{v}.package_id IN (SELECT package_id FROM stage_in_play)"
_IN_PLAY_TARGET = (
    "{t}.version_id IN (SELECT iv.id FROM version AS iv"
    " JOIN stage_in_play AS i ON i.package_id = iv.package_id)"
)
# A skipped package must still hold what its stored hash described when the diff runs. On
# PostgreSQL staging runs under the catalog's lock, so this finds nothing; SQLite stages
# before taking its write lock (syncd/sync/sqlite_path.py), and a hand write or another
# sync may have come in between.
_SKIPPED_MOVED = """
SELECT count(*) FROM stage_package AS k WHERE k.skipped AND NOT EXISTS (
    SELECT 1 FROM package AS p WHERE p.id = k.package_id AND p.catalog_id = :c
      AND p.name = k.name AND p.versions_hash = k.versions_hash)
"""
# Packages whose versions the diff wrote or found unchanged without a stored hash. (New and
# updated packages got theirs from the diff's INSERT and UPDATE.)
_STORE = """
UPDATE package SET versions_hash = s.versions_hash FROM stage_package AS s
WHERE package.catalog_id = :c AND package.name = s.name AND NOT s.skipped
  AND ((package.versions_hash IS NULL) <> (s.versions_hash IS NULL)
       OR package.versions_hash <> s.versions_hash)
"""
# Packages holding rows made through the API, and local packages: their staging depends on
# those rows (twins, positions), not only on upstream.
_FORGET_LOCAL = """
UPDATE package SET versions_hash = NULL
WHERE catalog_id = :c AND versions_hash IS NOT NULL AND (is_local
    OR id IN (SELECT package_id FROM version WHERE catalog_id = :c AND is_local)
    OR id IN (SELECT v.package_id FROM target AS t JOIN version AS v ON v.id = t.version_id
              WHERE t.catalog_id = :c AND t.is_local))
"""
_FORGET = "UPDATE package SET versions_hash = NULL WHERE id IN :ids AND versions_hash IS NOT NULL"


# Changing what the hash covers: change this too, so that every stored hash differs once.
_FORMAT = b"versions-hash/1 max-field-chars="
_NUL_REPR = "\\x00"  # how repr() writes NUL


def versions_hash(versions: Sequence[VersionRecord], max_field_chars: int) -> tuple[str, bool]:
    """(the versions hash of a package's kept versions, plain).

    Made from the records, not from their encoded rows: encoding every row (sorted-key JSON,
    a content hash each) is what a refresh of unchanged content would otherwise spend its
    time on (EESSI: 4x the cost of this). The rows are a function of the records and of
    `max_field_chars`, so the hash covers both. `plain` is False when a JSON value might hold
    NUL or a string longer than max_field_chars (its repr does): its rows would be stored
    altered and the alteration named in update_errors (syncd/sync/rows.py), so such a
    package is always staged, and named at every sync."""
    digest = blake2b(_FORMAT + str(max_field_chars).encode(), digest_size=16)
    plain = True
    for v in versions:
        text = repr(
            (
                v.version,
                v.module_version,
                v.release_date,
                v.dependencies,
                v.metadata,
                [
                    (t.target_type, t.target_name, t.target_subtype, t.location, t.metadata,
                     t.gpu_architectures)
                    for t in v.targets
                ],
            )
        )  # fmt: skip
        if plain and (len(text) > max_field_chars or _NUL_REPR in text):
            plain = False
        digest.update(text.encode("utf-8", "backslashreplace"))
    return digest.hexdigest(), plain


def skipped_version(alias: str) -> str:
    return _SKIPPED_VERSION.format(v=alias)


def in_play_version(alias: str) -> str:
    return _IN_PLAY_VERSION.format(v=alias)


def in_play_target(alias: str) -> str:
    return _IN_PLAY_TARGET.format(t=alias)


def fill_in_play(conn: Connection, catalog_id: int) -> int:
    """stage_in_play: the catalog's packages whose versions and targets the diff may delete
    (all but the skipped ones; vanished packages included); returns how many. 0 (a refresh
    of unchanged content): the diff's version and target deletes need not run."""
    count = int(conn.execute(text(_FILL_IN_PLAY), {"c": catalog_id}).rowcount)
    prefix = "temp." if conn.dialect.name == "sqlite" else ""
    conn.exec_driver_sql(f"CREATE INDEX {prefix}ix_stage_in_play ON stage_in_play (package_id)")
    return count


def stored_hashes(
    conn: Connection, catalog_id: int, *, keep_missing: bool = False
) -> dict[str, tuple[int, str]] | None:
    """The catalog's stored hashes, for staging; None for a keep-missing sync, which counts
    a package's kept versions from its staged ones (syncd/sync/diff.py) and so stages all."""
    if keep_missing:
        return None
    return {
        str(name): (int(package_id), str(value))
        for name, package_id, value in conn.execute(text(_STORED), {"c": catalog_id})
    }


def check_skipped(conn: Connection, catalog_id: int) -> None:
    """Raise TransientError (the command is retried) if a skipped package changed after
    its stored hash was read: its versions were not staged, so this sync cannot tell."""
    moved = int(conn.execute(text(_SKIPPED_MOVED), {"c": catalog_id}).scalar_one())
    if moved:
        raise TransientError(
            f"{moved} packages of the catalog were changed by another write while the "
            "snapshot was staged; the sync wrote nothing and will be retried."
        )


def store_hashes(conn: Connection, catalog_id: int, *, has_local_rows: bool) -> None:
    """After the diff: the staged hashes become the stored ones, except where rows made
    through the API are involved."""
    conn.execute(text(_STORE), {"c": catalog_id})
    if has_local_rows:
        conn.execute(text(_FORGET_LOCAL), {"c": catalog_id})


def forget(conn: Connection, package_ids: Set[int]) -> None:
    """The packages' stored hashes dropped (a hand write changed their rows): their next sync
    stages them in full, so that upstream's rows come back where the write removed them."""
    ids = sorted(package_ids)
    statement = text(_FORGET).bindparams(bindparam("ids", expanding=True))
    for start in range(0, len(ids), 5000):
        conn.execute(statement, {"ids": ids[start : start + 5000]})
