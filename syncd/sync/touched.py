"""Which packages a diff touched, so that exactly their list fragments are rendered again in
the sync's transaction (syncd/readmodel/): packages whose own row, versions or targets the
diff wrote (`modified` = the sync's time) or deleted, and the parents of all of them (a
parent's fragment names its extensions' versions).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, DateTime, bindparam, select, text

from syncd.db.tables import Version

_CHUNK = 5000

_WRITTEN = """
SELECT id FROM package WHERE catalog_id = :c AND modified = :now
UNION SELECT package_id FROM version WHERE catalog_id = :c AND modified = :now
UNION SELECT v.package_id FROM target AS t JOIN version AS v ON v.id = t.version_id
    WHERE t.catalog_id = :c AND t.modified = :now
"""


def written_packages(conn: Connection, catalog_id: int, now: datetime) -> set[int]:
    # The same typed parameter the diff wrote `modified` with, so both backends compare equal.
    query = text(_WRITTEN).bindparams(bindparam("now", type_=DateTime(timezone=True)))
    return {int(row[0]) for row in conn.execute(query, {"c": catalog_id, "now": now})}


def _chunks(ids: Iterable[int]) -> list[list[int]]:
    values = sorted(set(ids))
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def packages_of_versions(conn: Connection, version_ids: Iterable[int]) -> set[int]:
    """The packages of versions that still exist (asked before those versions' deletion)."""
    found: set[int] = set()
    for chunk in _chunks(version_ids):
        found.update(
            conn.execute(select(Version.package_id).where(Version.id.in_(chunk))).scalars()
        )
    return found
