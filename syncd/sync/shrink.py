"""The shrink guard: an update whose upstream lost most of a catalog's packages or versions
is refused (issue 15, "Guard against a truncated upstream").

A truncated download, an emptied mirror or an upstream mid-rewrite parses fine and would
delete most of a catalog. shrink_verdict counts, with two queries against the staged
snapshot and before any statement of the diff has run, how many of the catalog's packages
and versions the snapshot no longer lists. The sync (diff.py) refuses the update when either
is more than SYNCD_MAX_SHRINK_FRACTION of them: a permanent failure (not retried), recorded
as a `refused` run, the catalog kept as it was. `force` (`syncd update UUID --force`, the
message's `force: true`, the API's `{"force": true}`) accepts it once; `allow_shrink` is the
older name of the same override. A dry run (planning.py) prints the same verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from syncd.errors import RefusedError
from syncd.sync.versions_hash import skipped_version

# Local packages (made through the API) are never deleted by a sync: not counted.
_COUNT_REMOVED = """
SELECT count(*), coalesce(sum(CASE WHEN NOT EXISTS (
    SELECT 1 FROM stage_package AS s WHERE s.name = package.name) THEN 1 ELSE 0 END), 0)
FROM package WHERE catalog_id = :c AND NOT is_local
"""
# stage_version.package_id is not resolved yet: matched by the package's name. A skipped
# package's versions were not staged, and are all kept (syncd/sync/versions_hash.py).
_COUNT_REMOVED_VERSIONS = f"""
SELECT count(*), coalesce(sum(CASE WHEN NOT {skipped_version("v")} AND NOT EXISTS (
    SELECT 1 FROM stage_version AS s WHERE s.package_name = p.name
      AND s.version = v.version AND s.module_version = v.module_version) THEN 1 ELSE 0 END), 0)
FROM version AS v JOIN package AS p ON p.id = v.package_id
WHERE v.catalog_id = :c AND NOT v.is_local
"""
# SQLite looks staged versions up one by one: by name here (diff.py's index is by id).
_SQLITE_VERSION_NAME_INDEX = (
    "CREATE INDEX IF NOT EXISTS temp.ix_stage_version_name "
    "ON stage_version (package_name, version, module_version)"
)


# A limit of 1.0 or more refuses nothing: the default of sync_catalog (tests, benchmarks);
# every command passes the process's SYNCD_MAX_SHRINK_FRACTION (syncd/service/running.py).
GUARD_OFF = 1.0


class ShrinkRefusedError(RefusedError):
    """The update would remove more of the catalog than SYNCD_MAX_SHRINK_FRACTION allows."""


@dataclass(frozen=True)
class ShrinkVerdict:
    packages_before: int
    packages_removed: int
    limit: float  # SYNCD_MAX_SHRINK_FRACTION; 1.0 or more: the guard is off
    versions_before: int = 0
    versions_removed: int = 0

    @property
    def fraction(self) -> float:
        """The larger of the two shares removed (packages, versions)."""
        return max(self.package_fraction, self.version_fraction)

    @property
    def package_fraction(self) -> float:
        return self.packages_removed / self.packages_before if self.packages_before else 0.0

    @property
    def version_fraction(self) -> float:
        return self.versions_removed / self.versions_before if self.versions_before else 0.0

    @property
    def refused(self) -> bool:
        return self.limit < GUARD_OFF and self.fraction > self.limit

    def reason(self) -> str:
        # Packages first: what a site's users notice, and the usual cause of lost versions.
        if self.package_fraction > self.limit or self.package_fraction >= self.version_fraction:
            what = f"{self.packages_removed:,} of {self.packages_before:,} packages"
            what += f" ({self.package_fraction:.0%})"
        else:
            what = f"{self.versions_removed:,} of {self.versions_before:,} versions"
            what += f" ({self.version_fraction:.0%})"
        return (
            f"upstream would remove {what}, more than "
            f"SYNCD_MAX_SHRINK_FRACTION={self.limit:g}; nothing was changed and the update "
            "is not retried (to accept it once: syncd update UUID --force, or force: true "
            'in the update_catalog message, or POST .../update_catalog/ {"force": true})'
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": "refuse" if self.refused else "pass",
            "max_shrink_fraction": self.limit,
            "packages_before": self.packages_before,
            "packages_removed": self.packages_removed,
            "versions_before": self.versions_before,
            "versions_removed": self.versions_removed,
        }


def shrink_verdict(
    conn: Connection, catalog_id: int, limit: float, *, keep_missing: bool = False
) -> ShrinkVerdict:
    """The verdict on syncing the staged snapshot into `catalog_id` (staging filled,
    nothing of the diff applied yet). Keep-missing deletes nothing, so it never shrinks."""
    before, removed = conn.execute(text(_COUNT_REMOVED), {"c": catalog_id}).one()
    if keep_missing or limit >= GUARD_OFF:  # the versions are counted only when they matter
        return ShrinkVerdict(int(before), 0 if keep_missing else int(removed), limit)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_VERSION_NAME_INDEX)
    versions, gone = conn.execute(text(_COUNT_REMOVED_VERSIONS), {"c": catalog_id}).one()
    return ShrinkVerdict(int(before), int(removed), limit, int(versions), int(gone))
