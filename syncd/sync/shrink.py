"""The shrink guard: an update whose upstream lost most of a catalog's packages is refused.

A truncated download, an emptied mirror or an upstream mid-rewrite parses fine and would
delete most of a catalog. shrink_verdict counts, with one query against the staged snapshot
and before any statement of the diff has run, how many of the catalog's packages the
snapshot no longer lists. The sync (diff.py) refuses the update when that is more than
SYNCD_MAX_SHRINK_FRACTION of them; a dry run (planning.py) prints the same verdict. It
counts packages, not versions: a version dropping out is a normal refresh (Spack prunes
old ones), a package vanishing is what a site's users notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from syncd.errors import PermanentError

# Local packages (made through the API) are never deleted by a sync: not counted.
_COUNT_REMOVED = """
SELECT count(*), coalesce(sum(CASE WHEN NOT EXISTS (
    SELECT 1 FROM stage_package AS s WHERE s.name = package.name) THEN 1 ELSE 0 END), 0)
FROM package WHERE catalog_id = :c AND NOT is_local
"""


# A limit of 1.0 or more refuses nothing: the default of sync_catalog (tests, benchmarks);
# every command passes the process's SYNCD_MAX_SHRINK_FRACTION (syncd/service/running.py).
GUARD_OFF = 1.0


class ShrinkRefusedError(PermanentError):
    """The update would remove more of the catalog than SYNCD_MAX_SHRINK_FRACTION allows."""


@dataclass(frozen=True)
class ShrinkVerdict:
    packages_before: int
    packages_removed: int
    limit: float  # SYNCD_MAX_SHRINK_FRACTION; 1.0 or more: the guard is off

    @property
    def fraction(self) -> float:
        return self.packages_removed / self.packages_before if self.packages_before else 0.0

    @property
    def refused(self) -> bool:
        return self.limit < GUARD_OFF and self.fraction > self.limit

    def reason(self) -> str:
        return (
            f"upstream would remove {self.packages_removed:,} of {self.packages_before:,} "
            f"packages ({self.fraction:.0%}), more than SYNCD_MAX_SHRINK_FRACTION="
            f"{self.limit:g}; nothing was changed (syncd update UUID --allow-shrink "
            "accepts it once)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": "refuse" if self.refused else "pass",
            "max_shrink_fraction": self.limit,
            "packages_before": self.packages_before,
            "packages_removed": self.packages_removed,
        }


def shrink_verdict(
    conn: Connection, catalog_id: int, limit: float, *, keep_missing: bool = False
) -> ShrinkVerdict:
    """The verdict on syncing the staged snapshot into `catalog_id` (stage_package filled,
    nothing of the diff applied yet). Keep-missing deletes nothing, so it never shrinks."""
    before, removed = conn.execute(text(_COUNT_REMOVED), {"c": catalog_id}).one()
    return ShrinkVerdict(int(before), 0 if keep_missing else int(removed), limit)
