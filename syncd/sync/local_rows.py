"""Local rows in a sync: packages, versions and targets made by hand through the API
(`is_local`, syncd/service/hand_writes.py) are never updated, deleted or counted as upstream
rows by a sync.

Before the diff (staging loaded, nothing of the catalog written yet):
- a twin, an upstream record whose key a local row already holds (a package name, a
  version of a package, a target of a version), is taken out of staging with everything it
  holds: the local row wins, and the record is named in update_errors as left out ("delete
  the local row to let upstream's in"). So no statement of the diff ever matches a local row;
- an upstream row that upstream dropped but that holds local rows (a version with a local
  target, a package with a local version) becomes local itself instead of being deleted:
  deleting it would delete the local rows with it (ON DELETE CASCADE);
- a staged package's version_count counts its local versions too, so that an upstream
  package holding local versions is not rewritten by every sync.
Positions: upstream packages holding local versions have their staged versions numbered with
the local ones before the diff, local packages theirs after it (syncd/sync/local_order.py).
After the diff, local packages' counts are brought up to date, and the staged counts become
the catalog's totals (upstream rows written plus local rows), which the catalog's
package_count etc. show.

A catalog without local rows (the usual case) costs one indexed query per sync.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from syncd.logging import get_logger
from syncd.sync.local_order import renumber_staged, renumber_versions
from syncd.sync.records import _Staged

log = get_logger(__name__)


def _kept(what: str) -> str:
    return f"{what} made through the API is kept (delete it to let upstream's in)"


_HAS_LOCAL = """
SELECT CASE WHEN EXISTS (SELECT 1 FROM package WHERE catalog_id = :c AND is_local)
    OR EXISTS (SELECT 1 FROM version WHERE catalog_id = :c AND is_local)
    OR EXISTS (SELECT 1 FROM target WHERE catalog_id = :c AND is_local) THEN 1 ELSE 0 END
"""

# --- twins -------------------------------------------------------------------------------
_LOCAL_NAMES = "(SELECT name FROM package WHERE catalog_id = :c AND is_local)"
_PACKAGE_TWINS = f"SELECT name FROM stage_package WHERE name IN {_LOCAL_NAMES} ORDER BY name"
_PRUNE_PACKAGE = (
    f"DELETE FROM stage_target WHERE package_name IN {_LOCAL_NAMES}",
    f"DELETE FROM stage_version WHERE package_name IN {_LOCAL_NAMES}",
    f"DELETE FROM stage_parent WHERE name IN {_LOCAL_NAMES}",
    f"DELETE FROM stage_package WHERE name IN {_LOCAL_NAMES}",
)


def _local_version(stage: str) -> str:
    return f"""SELECT 1 FROM version AS v JOIN package AS p ON p.id = v.package_id
    WHERE v.catalog_id = :c AND v.is_local AND p.name = {stage}.package_name
      AND v.version = {stage}.version AND v.module_version = {stage}.module_version"""


def _local_target(stage: str) -> str:
    return f"""SELECT 1 FROM target AS t JOIN version AS v ON v.id = t.version_id
    JOIN package AS p ON p.id = v.package_id
    WHERE t.catalog_id = :c AND t.is_local AND p.name = {stage}.package_name
      AND v.version = {stage}.version AND v.module_version = {stage}.module_version
      AND t.target_type = {stage}.target_type AND t.target_name = {stage}.target_name
      AND t.target_subtype = {stage}.target_subtype"""


_VERSION_TWINS = f"""SELECT package_name, version FROM stage_version
WHERE EXISTS ({_local_version("stage_version")}) ORDER BY package_name, version"""
_PRUNE_VERSION = (
    f"DELETE FROM stage_target WHERE EXISTS ({_local_version('stage_target')})",
    f"DELETE FROM stage_version WHERE EXISTS ({_local_version('stage_version')})",
)
_TARGET_TWINS = f"""SELECT package_name, version, target_type, target_name, target_subtype
FROM stage_target WHERE EXISTS ({_local_target("stage_target")})
ORDER BY package_name, version, target_type, target_name, target_subtype"""
_PRUNE_TARGET = f"DELETE FROM stage_target WHERE EXISTS ({_local_target('stage_target')})"

# --- upstream rows that hold local ones ---------------------------------------------------
_PROMOTE_VERSIONS = """
UPDATE version SET is_local = TRUE
WHERE id IN (SELECT t.version_id FROM target AS t WHERE t.catalog_id = :c AND t.is_local)
  AND NOT is_local
  AND NOT EXISTS (SELECT 1 FROM stage_version AS s JOIN package AS p
      ON p.catalog_id = :c AND p.name = s.package_name
      WHERE p.id = version.package_id AND s.version = version.version
        AND s.module_version = version.module_version)
"""
_PROMOTE_PACKAGES = """
UPDATE package SET is_local = TRUE
WHERE id IN (SELECT v.package_id FROM version AS v WHERE v.catalog_id = :c AND v.is_local)
  AND NOT is_local
  AND NOT EXISTS (SELECT 1 FROM stage_package AS s WHERE s.name = package.name)
"""
_STAGED_COUNTS_WITH_LOCAL = """
UPDATE stage_package SET version_count =
    (SELECT count(*) FROM stage_version AS s WHERE s.package_name = stage_package.name)
  + (SELECT count(*) FROM version AS v JOIN package AS p ON p.id = v.package_id
     WHERE p.catalog_id = :c AND p.name = stage_package.name AND v.is_local)
WHERE name IN (SELECT p.name FROM version AS v JOIN package AS p ON p.id = v.package_id
    WHERE v.catalog_id = :c AND v.is_local)
"""

# --- after the diff -----------------------------------------------------------------------
_LOCAL_PACKAGE_COUNTS = """
UPDATE package SET
    version_count = (SELECT count(*) FROM version AS v WHERE v.package_id = package.id),
    extension_count = (SELECT count(*) FROM package_parent AS l WHERE l.parent_id = package.id)
WHERE catalog_id = :c AND is_local
"""
_LOCAL_PACKAGES = "SELECT id FROM package WHERE catalog_id = :c AND is_local"
_PACKAGES_WITH_LOCAL_VERSIONS = (
    "SELECT DISTINCT package_id FROM version WHERE catalog_id = :c AND is_local"
)
_LOCAL_TOTALS = """
SELECT (SELECT count(*) FROM package WHERE catalog_id = :c AND is_local),
       (SELECT count(*) FROM version WHERE catalog_id = :c AND is_local),
       (SELECT count(*) FROM target WHERE catalog_id = :c AND is_local)
"""


def _run(conn: Connection, sql: str, catalog_id: int) -> int:
    return int(conn.execute(text(sql), {"c": catalog_id}).rowcount)


def _rows(conn: Connection, sql: str, catalog_id: int) -> list[Any]:
    return list(conn.execute(text(sql), {"c": catalog_id}))


def has_local_rows(conn: Connection, catalog_id: int) -> bool:
    return bool(conn.execute(text(_HAS_LOCAL), {"c": catalog_id}).scalar_one())


def before_diff(conn: Connection, catalog_id: int, staged: _Staged) -> bool:
    """Take twins out of staging, keep dropped upstream rows that hold local ones, count local
    versions into staged packages. False (nothing done) when the catalog has no local row."""
    if not has_local_rows(conn, catalog_id):
        return False
    for (name,) in _rows(conn, _PACKAGE_TWINS, catalog_id):
        staged.skip(f"package {name!r}: {_kept('a package of that name')}")
    targets = _run(conn, _PRUNE_PACKAGE[0], catalog_id)
    versions = _run(conn, _PRUNE_PACKAGE[1], catalog_id)
    _run(conn, _PRUNE_PACKAGE[2], catalog_id)
    packages = _run(conn, _PRUNE_PACKAGE[3], catalog_id)
    for name, number in _rows(conn, _VERSION_TWINS, catalog_id):
        staged.skip(f"package {name!r} version {number!r}: {_kept('a version')}")
    targets += _run(conn, _PRUNE_VERSION[0], catalog_id)
    versions += _run(conn, _PRUNE_VERSION[1], catalog_id)
    for name, number, *key in _rows(conn, _TARGET_TWINS, catalog_id):
        staged.skip(
            f"package {name!r} version {number!r} target {tuple(key)!r}: {_kept('a target')}"
        )
    targets += _run(conn, _PRUNE_TARGET, catalog_id)
    staged.packages -= packages
    staged.versions -= versions
    staged.targets -= targets
    kept_versions = _run(conn, _PROMOTE_VERSIONS, catalog_id)
    kept_packages = _run(conn, _PROMOTE_PACKAGES, catalog_id)
    if kept_versions or kept_packages:
        log.info(
            "local_rows_kept_their_parent",
            catalog_id=catalog_id,
            versions=kept_versions,
            packages=kept_packages,
        )
    _run(conn, _STAGED_COUNTS_WITH_LOCAL, catalog_id)
    renumber_staged(conn, catalog_id, sqlite=conn.dialect.name == "sqlite")
    return True


def after_diff(conn: Connection, catalog_id: int, staged: _Staged) -> set[int]:
    """Local packages' counts and versions' positions (upstream packages holding local
    versions were numbered before the diff); the staged counts become the catalog's totals.
    Returns the packages whose local rows this sync may have moved or recounted (local
    packages, packages holding local versions): for whatever derives data from them."""
    _run(conn, _LOCAL_PACKAGE_COUNTS, catalog_id)
    local = {int(row[0]) for row in _rows(conn, _LOCAL_PACKAGES, catalog_id)}
    renumber_versions(conn, local)
    holders = {int(row[0]) for row in _rows(conn, _PACKAGES_WITH_LOCAL_VERSIONS, catalog_id)}
    packages, versions, targets = _rows(conn, _LOCAL_TOTALS, catalog_id)[0]
    staged.packages += int(packages)
    staged.versions += int(versions)
    staged.targets += int(targets)
    return local | holders
