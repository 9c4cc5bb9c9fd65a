"""The stored counts a hand write keeps, as the sync keeps them: the catalog's package,
version and target counts (an unfiltered list's X-Result-Count is their sum) and a package's
version and extension counts; and the denormalised `catalog_id` of the rows a move carries
along. Neither stamps `modified`: a count is not an edit of the row holding it.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, func, or_, select, update

from syncd.db.tables import Catalog, Package, PackageParent, Target, Version

_CATALOGS = cast(Table, Catalog.__table__)
_PACKAGES = cast(Table, Package.__table__)
_VERSIONS = cast(Table, Version.__table__)
_TARGETS = cast(Table, Target.__table__)
_LINKS = cast(Table, PackageParent.__table__)


def bump_catalog(
    conn: Connection, catalog_id: int, *, packages: int = 0, versions: int = 0, targets: int = 0
) -> None:
    c = _CATALOGS.c
    conn.execute(
        update(_CATALOGS)
        .where(c.id == catalog_id)
        .values(
            package_count=c.package_count + packages,
            version_count=c.version_count + versions,
            target_count=c.target_count + targets,
            modified=c.modified,
        )
    )


def bump_package(
    conn: Connection, package_id: int, *, versions: int = 0, extensions: int = 0
) -> None:
    c = _PACKAGES.c
    conn.execute(
        update(_PACKAGES)
        .where(c.id == package_id)
        .values(
            version_count=c.version_count + versions,
            extension_count=c.extension_count + extensions,
            modified=c.modified,
        )
    )


def linked_packages(conn: Connection, package_id: int) -> set[int]:
    """The package's parents and extensions: what they embed of it changes with it."""
    rows = conn.execute(
        select(_LINKS.c.package_id, _LINKS.c.parent_id).where(
            or_(_LINKS.c.package_id == package_id, _LINKS.c.parent_id == package_id)
        )
    )
    return {int(other) for pair in rows for other in pair if other != package_id}


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar_one())


def move_package_rows(conn: Connection, package_id: int, old: int, new: int) -> None:
    """A package moved from catalog `old` to `new` (its own row already says so): its versions,
    targets and links follow, and both catalogs' counts."""
    version_ids = select(_VERSIONS.c.id).where(_VERSIONS.c.package_id == package_id)
    versions = _count(conn, select(func.count()).select_from(version_ids.subquery()))
    targets = _count(
        conn,
        select(func.count()).select_from(_TARGETS).where(_TARGETS.c.version_id.in_(version_ids)),
    )
    conn.execute(
        update(_TARGETS)
        .where(_TARGETS.c.version_id.in_(version_ids))
        .values(catalog_id=new, modified=_TARGETS.c.modified)
    )
    conn.execute(
        update(_VERSIONS)
        .where(_VERSIONS.c.package_id == package_id)
        .values(catalog_id=new, modified=_VERSIONS.c.modified)
    )
    conn.execute(
        update(_LINKS)
        .where(or_(_LINKS.c.package_id == package_id, _LINKS.c.parent_id == package_id))
        .values(catalog_id=new)
    )
    bump_catalog(conn, old, packages=-1, versions=-versions, targets=-targets)
    bump_catalog(conn, new, packages=1, versions=versions, targets=targets)


def move_version_rows(
    conn: Connection, row: Any, old_package: int, new_package: int, new_catalog: int
) -> None:
    """A version moved to another package (its own row already names it): both packages'
    counts, and when the package is in another catalog, its targets and both catalogs'."""
    bump_package(conn, old_package, versions=-1)
    bump_package(conn, new_package, versions=1)
    old_catalog = int(row.catalog_id)
    if new_catalog == old_catalog:
        return
    targets = _count(
        conn, select(func.count()).select_from(_TARGETS).where(_TARGETS.c.version_id == row.id)
    )
    conn.execute(
        update(_VERSIONS)
        .where(_VERSIONS.c.id == row.id)
        .values(catalog_id=new_catalog, modified=_VERSIONS.c.modified)
    )
    conn.execute(
        update(_TARGETS)
        .where(_TARGETS.c.version_id == row.id)
        .values(catalog_id=new_catalog, modified=_TARGETS.c.modified)
    )
    bump_catalog(conn, old_catalog, versions=-1, targets=-targets)
    bump_catalog(conn, new_catalog, versions=1, targets=targets)
