"""Stored fragments (`package_read_model`): rendered in the writer's transaction, read by the
package list, rendered on the fly where missing or of an older FORMAT.

Every query loads a whole set of packages at once (chunked IN lists, or a whole catalog),
never one query per package.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, delete, or_, select, update

from syncd.db.locks import catalog_transaction
from syncd.db.tables import Package, PackageParent, PackageReadModel, Target, Version
from syncd.readmodel import pg_render, sqlite_render
from syncd.readmodel.fragments import (
    EMPTY,
    FORMAT,
    PACKAGES_PATH,
    Fragment,
    dumps,
    nested_package,
    nested_target,
    nested_version,
)
from syncd.readmodel.items import store_items
from syncd.readmodel.sql_store import hold_catalog

# A package's versions and a version's targets as Waldur nests them (its models' default
# orderings, which its prefetches keep): versions oldest first (by the upstream's version
# semantics, where Waldur compares strings), then module version; targets newest first.
NESTED_VERSION_ORDER = [Version.sort_index.desc(), Version.module_version, Version.id]
NESTED_TARGET_ORDER = [Target.created.desc(), Target.id]
# Ids per IN list: well under SQLite's bound-parameter limit.
_CHUNK = 5000


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


def _versions_statement() -> Select:
    return select(
        Version.id,
        Version.package_id,
        Version.uuid,
        Version.version,
        Version.module_version,
        Version.release_date,
        Version.metadata_.label("metadata_"),
    ).order_by(Version.package_id, *NESTED_VERSION_ORDER)


def _targets_statement() -> Select:
    return (
        select(
            Target.version_id,
            Target.uuid,
            Target.target_type,
            Target.target_name,
            Target.target_subtype,
            Target.location,
            Target.metadata_.label("metadata_"),
            Target.gpu_architectures,
            Target.is_local,
            Version.version,
            Version.metadata_.label("version_metadata"),
            Version.dependencies.label("version_dependencies"),
            Version.is_local.label("version_is_local"),
            Package.categories.label("package_categories"),
        )
        .join(Version, Version.id == Target.version_id)
        .join(Package, Package.id == Version.package_id)
        .order_by(*NESTED_TARGET_ORDER)
    )


def _version_rows(
    conn: Connection, catalog_id: int | None, package_ids: Sequence[int]
) -> list[Any]:
    statement = _versions_statement()
    if catalog_id is not None:
        return list(conn.execute(statement.where(Version.catalog_id == catalog_id)))
    rows: list[Any] = []
    for chunk in _chunks(package_ids):
        rows.extend(conn.execute(statement.where(Version.package_id.in_(chunk))))
    return rows


def _targets(
    conn: Connection, catalog_id: int | None, version_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    statement = _targets_statement()
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if catalog_id is not None:
        batches = [conn.execute(statement.where(Target.catalog_id == catalog_id))]
    else:
        batches = [
            conn.execute(statement.where(Target.version_id.in_(chunk)))
            for chunk in _chunks(version_ids)
        ]
    for batch in batches:
        for row in batch:
            found[row.version_id].append(nested_target(row))
    return found


def _extensions(
    conn: Connection, catalog_id: int | None, package_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """Each package's extensions (by name), with their version strings in the nested order;
    with `catalog_id`, the links of that whole catalog."""
    links: list[Any] = []
    statement = select(PackageParent.parent_id, Package.id, Package.uuid, Package.name).join(
        Package, Package.id == PackageParent.package_id
    )
    if catalog_id is not None:
        links.extend(conn.execute(statement.where(PackageParent.catalog_id == catalog_id)))
    else:
        for chunk in _chunks(package_ids):
            links.extend(conn.execute(statement.where(PackageParent.parent_id.in_(chunk))))
    links.sort(key=lambda link: (link.parent_id, link.name, link.id))
    names = version_names(conn, {link.id for link in links})
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for link in links:
        found[link.parent_id].append(nested_package("", link.uuid, link.name, names[link.id]))
    return found


def version_names(conn: Connection, package_ids: Collection[int]) -> dict[int, list[str]]:
    """Each package's version strings in NESTED_VERSION_ORDER (what a nested package shows)."""
    names: dict[int, list[str]] = defaultdict(list)
    for chunk in _chunks(sorted(set(package_ids))):
        for package_id, version in conn.execute(
            select(Version.package_id, Version.version)
            .where(Version.package_id.in_(chunk))
            .order_by(Version.package_id, *NESTED_VERSION_ORDER)
        ):
            names[package_id].append(version)
    return names


def _versions_in_python(
    conn: Connection, catalog_id: int | None, package_ids: Sequence[int]
) -> dict[int, str]:
    """The `versions` JSON text of the packages that have versions, built in Python from
    fragments.nested_version: the reference the databases' renderers (pg_render,
    sqlite_render) are tested against."""
    versions = _version_rows(conn, catalog_id, package_ids)
    targets = _targets(conn, catalog_id, [row.id for row in versions])
    nested: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in versions:
        nested[row.package_id].append(nested_version(row, targets.get(row.id, [])))
    return {package_id: dumps(items) for package_id, items in nested.items()}


def _render(
    conn: Connection, catalog_id: int | None, package_ids: Sequence[int]
) -> dict[int, Fragment]:
    """Fragments of `package_ids` (all of them, also those with nothing to embed); with
    `catalog_id`, versions and targets are read for that whole catalog at once."""
    versions = _sql_renderer(conn).versions_json(conn, catalog_id, package_ids)
    extensions = _extensions(conn, catalog_id, package_ids)
    return {
        package_id: Fragment(
            dumps(extensions.get(package_id, [])), versions.get(package_id, EMPTY.versions)
        )
        if package_id in versions or package_id in extensions
        else EMPTY
        for package_id in package_ids
    }


def render_packages(
    conn: Connection, catalog_id: int, package_ids: Collection[int] | None, *, fresh: bool = False
) -> int:
    """Store the fragments of `package_ids` of catalog `catalog_id` (None: all its packages),
    in the caller's transaction; ids of packages that no longer exist are ignored. Returns
    how many were stored. `fresh`: none of them is stored yet (refresh_read_model)."""
    if package_ids is None:
        if not fresh:
            conn.execute(delete(PackageReadModel).where(PackageReadModel.catalog_id == catalog_id))
        chunks: list[list[int] | None] = [None]
    else:
        id_chunks = list(_chunks(sorted(set(package_ids))))
        for id_chunk in id_chunks:
            conn.execute(delete(PackageReadModel).where(PackageReadModel.package_id.in_(id_chunk)))
        chunks = list(id_chunks)
    # Built and stored by the database, without a round trip through Python (PostgreSQL's
    # INSERT writes the extensions and items too).
    renderer = _sql_renderer(conn)
    stored = sum(renderer.store(conn, catalog_id, chunk, FORMAT) for chunk in chunks)
    if conn.dialect.name != "postgresql":
        _store_extensions(conn, catalog_id, package_ids)
    store_items(conn, catalog_id, package_ids)
    return stored


def _sql_renderer(conn: Connection) -> Any:
    """The module that builds nested versions in the connection's database."""
    return pg_render if conn.dialect.name == "postgresql" else sqlite_render


def _store_extensions(
    conn: Connection, catalog_id: int, package_ids: Collection[int] | None
) -> None:
    """The `extensions` of the stored packages that have any (SQLite's renderer stores
    `[]`; PostgreSQL's INSERT builds them itself, pg_items)."""
    ids = None if package_ids is None else sorted(set(package_ids))
    extensions = _extensions(conn, catalog_id if ids is None else None, ids or [])
    if extensions:
        conn.execute(
            update(PackageReadModel)
            .where(PackageReadModel.package_id == bindparam("parent"))
            .values(extensions=bindparam("text")),
            [{"parent": parent, "text": dumps(items)} for parent, items in extensions.items()],
        )


def with_parents(conn: Connection, package_ids: Collection[int]) -> set[int]:
    """`package_ids`, their parents (a parent's fragment names its extensions' versions) and
    their extensions (an item embeds its parents, with their names and versions)."""
    found = set(package_ids)
    for chunk in _chunks(sorted(found)):
        found.update(
            conn.execute(
                select(PackageParent.parent_id).where(PackageParent.package_id.in_(chunk))
            ).scalars()
        )
        found.update(
            conn.execute(
                select(PackageParent.package_id).where(PackageParent.parent_id.in_(chunk))
            ).scalars()
        )
    return found


def read_fragments(conn: Connection, package_ids: Sequence[int]) -> dict[int, Fragment]:
    """The fragments of a page's packages: stored ones of the current FORMAT, the others
    rendered now (nothing is written: a read never waits for a writer's lock)."""
    found: dict[int, Fragment] = {}
    for chunk in _chunks(list(package_ids)):
        for row in conn.execute(
            select(
                PackageReadModel.package_id,
                PackageReadModel.extensions,
                PackageReadModel.versions,
            ).where(PackageReadModel.package_id.in_(chunk), PackageReadModel.format == FORMAT)
        ):
            found[row.package_id] = Fragment(row.extensions, row.versions)
    missing = [package_id for package_id in package_ids if package_id not in found]
    if missing:
        found.update(_render(conn, None, missing))
    return found


def _stale_statement() -> Select:
    return (
        select(Package.catalog_id, Package.id)
        .outerjoin(PackageReadModel, PackageReadModel.package_id == Package.id)
        .where(or_(PackageReadModel.package_id.is_(None), PackageReadModel.format != FORMAT))
    )


def stale_count(conn: Connection) -> int:
    """Packages whose fragment is missing or of an older FORMAT."""
    return len(list(conn.execute(_stale_statement())))


def fill_stale(engine: Engine, *, lock_timeout: float = 60.0) -> int:
    """Render every missing or outdated fragment, a catalog at a time under its sync lock
    (`syncd migrate` after a FORMAT change or the table's creation). Returns how many."""
    with engine.connect() as conn:
        stale: dict[int, list[int]] = defaultdict(list)
        for catalog_id, package_id in conn.execute(_stale_statement()):
            stale[catalog_id].append(package_id)
    done = 0
    for catalog_id, ids in sorted(stale.items()):
        with catalog_transaction(engine, catalog_id, timeout=lock_timeout) as conn:
            hold_catalog(conn, catalog_id)
            done += render_packages(conn, catalog_id, ids)
    return done


__all__ = [
    "NESTED_TARGET_ORDER",
    "NESTED_VERSION_ORDER",
    "PACKAGES_PATH",
    "fill_stale",
    "read_fragments",
    "render_packages",
    "stale_count",
    "with_parents",
]
