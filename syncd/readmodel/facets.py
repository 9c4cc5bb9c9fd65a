"""Filter values and search text derived from the catalog rows, kept in the writer's
transaction (package_facet, package_search; migration 0014).

The portal's filtered lists asked, per request, whether any of a package's 10-100 targets has
a CPU family, microarchitecture or GPU, whether any version has a toolchain, and whether the
name, description or any version contains a text: scans of 164,000 targets and 52,000
versions. The answers change only when a writer commits, so the writer stores them:
`refresh_facets` at the end of every sync (syncd/sync/engine.py, sqlite_path.py) and hand
write (syncd/service/hand_writes.py), in the same transaction; a deleted package's rows (a
deleted catalog's too, through its packages) go in the same statement by the trigger
package_derived_delete (migration 0025; no foreign keys: their per-row checks cost imports).
The filters (syncd/api/software_queries.py) read them with the same comparisons the scans
made, so results do not change.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Text,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB

from syncd.db.tables import Package, PackageFacet, PackageSearch, Target, Version
from syncd.domain import CPU_TARGET_TYPE
from syncd.readmodel.sql_store import nested_loops

# Facet kinds.
CPU_FAMILY = "cpu_family"  # target_name of a CPU target
CPU_MICROARCHITECTURE = "cpu_micro"  # target_subtype of a CPU target
GPU = "gpu"  # a target with GPU architectures (value "")
TOOLCHAIN = "toolchain"  # metadata.toolchain.name of a version
GPU_ARCH = "gpu_arch"  # an element of a target's gpu_architectures (migration 0017)
# Longer toolchain names are not stored (the key's column is 200 wide): a filter value longer
# than this is answered by the scan it replaced (see `stored`).
MAX_VALUE_CHARS = 200
# Joins the parts of a package's search text. A `query` holding it could match across two
# parts, so such a query is answered by the scan instead (see `searchable`).
SEPARATOR = "\x1f"
# Package ids per statement (SQLite binds at most 32,766 values).
CHUNK = 5_000


def stored(value: str) -> bool:
    """Whether a filter value can be looked up in package_facet (else: the old scan)."""
    return len(value) <= MAX_VALUE_CHARS


def searchable(text: str) -> bool:
    """Whether a `query` value can be looked up in package_search (else: the old scan)."""
    return SEPARATOR not in text


def toolchain_name() -> ColumnElement[str]:
    """A version's toolchain name as the toolchain_name filter compares it."""
    return Version.metadata_[("toolchain", "name")].as_string()  # type: ignore[no-any-return]


def _has_gpu(dialect: str) -> ColumnElement[bool]:
    """As syncd/api/filters.py's json_array_nonempty (the has_gpu filter's test)."""
    if dialect == "postgresql":
        return func.jsonb_array_length(Target.gpu_architectures.cast(JSONB)) > 0
    return func.json_array_length(Target.gpu_architectures) > 0


def refresh_facets(
    conn: Connection,
    catalog_id: int | None,
    package_ids: Collection[int] | None,
    *,
    fresh: bool = False,
) -> None:
    """Rewrite the derived rows of catalog `catalog_id`'s packages (None: every catalog's),
    or only of `package_ids` (None: all of them; ids of deleted packages are ignored), in the
    caller's transaction. `fresh`: none is stored yet (a first import), nothing to delete."""
    if package_ids is None:
        _refresh(conn, catalog_id, None, fresh)
        return
    ids = sorted(package_ids)
    for start in range(0, len(ids), CHUNK):
        _refresh(conn, catalog_id, ids[start : start + CHUNK])


def _refresh(
    conn: Connection, catalog_id: int | None, ids: list[int] | None, fresh: bool = False
) -> None:
    packages: list[ColumnElement[bool]] = []
    versions: list[ColumnElement[bool]] = []
    targets: list[ColumnElement[bool]] = []
    if catalog_id is not None:
        packages.append(Package.catalog_id == catalog_id)
        versions.append(Version.catalog_id == catalog_id)
        # On the version too (a target's version is of its catalog): hashed for the join
        # without statistics, all the database's versions were read, not the catalog's.
        targets.extend((Target.catalog_id == catalog_id, Version.catalog_id == catalog_id))
    if ids is not None:
        packages.append(Package.id.in_(ids))
        versions.append(Version.package_id.in_(ids))
        targets.append(Version.package_id.in_(ids))
    in_scope = select(Package.id).where(*packages)
    for table in () if fresh else (PackageFacet, PackageSearch):
        conn.execute(delete(table).where(table.package_id.in_(in_scope)))
    dialect = conn.dialect.name
    rows = _facet_rows(dialect, versions, targets)
    conn.execute(insert(PackageFacet).from_select(("kind", "value", "package_id"), rows))
    # After the `gpu` facets: only their packages' targets are read for the architectures.
    arch_rows = _gpu_arch_rows(dialect, in_scope, catalog_id)
    with nested_loops(conn):
        conn.execute(insert(PackageFacet).from_select(("kind", "value", "package_id"), arch_rows))
    search = _search_rows(dialect, packages)
    conn.execute(insert(PackageSearch).from_select(("package_id", "search_text"), search))


def _facet_rows(
    dialect: str, versions: list[ColumnElement[bool]], targets: list[ColumnElement[bool]]
) -> Any:
    # Each package's distinct kinds of target first (118,000 targets of an EESSI stack are
    # 47,000), then one row per facet: one pass over the targets instead of one per kind.
    built = (
        select(
            Version.package_id.label("package_id"),
            (Target.target_type == CPU_TARGET_TYPE).label("cpu"),
            Target.target_name.label("family"),
            Target.target_subtype.label("micro"),
            _has_gpu(dialect).label("gpu"),
        )
        .distinct()
        .join(Version, Version.id == Target.version_id)
        .where(*targets)
        .cte("built")
    )

    def facet(kind: str, value: Any, *where: ColumnElement[bool]) -> Any:
        return (
            select(literal(kind).label("kind"), value.label("value"), built.c.package_id)
            .distinct()
            .where(*where)
        )

    name = toolchain_name()
    return union_all(  # the kinds differ: no duplicates across the parts
        facet(CPU_FAMILY, built.c.family, built.c.cpu),
        facet(CPU_MICROARCHITECTURE, built.c.micro, built.c.cpu),
        facet(GPU, literal(""), built.c.gpu),
        select(literal(TOOLCHAIN).label("kind"), name.label("value"), Version.package_id)
        .distinct()
        .where(*versions, name.is_not(None), func.length(name) <= MAX_VALUE_CHARS),
    )


def _gpu_arch_rows(dialect: str, in_scope: Any, catalog_id: int | None) -> Any:
    """(GPU_ARCH, architecture, package) of the string elements of its targets' GPU lists, as
    the gpu_arch filter's containment test matches them: the targets of the packages in
    `in_scope` with a `gpu` facet (12 of 12,000), not all targets again."""
    if dialect == "postgresql":
        element = func.jsonb_array_elements(Target.gpu_architectures.cast(JSONB)).table_valued(
            "value"
        )
        is_text = func.jsonb_typeof(element.c.value) == "string"
        value: ColumnElement[str] = element.c.value.op("#>>")(literal([], type_=ARRAY(Text)))
    else:
        element = func.json_each(Target.gpu_architectures).table_valued("value", "type")
        is_text = element.c.type == "text"
        value = element.c.value
    # The catalog named on versions and targets too: with a database of many catalogs and
    # no statistics for the new rows, PostgreSQL read every target (1.3 s) otherwise.
    of_catalog = (
        []
        if catalog_id is None
        else [Version.catalog_id == catalog_id, Target.catalog_id == catalog_id]
    )
    return (
        select(literal(GPU_ARCH).label("kind"), value.label("value"), Version.package_id)
        .distinct()
        .select_from(Version)
        .join(Target, Target.version_id == Version.id)
        .join(element, literal(True))
        .where(
            # An IN list, so that SQLite too starts from these few packages.
            Version.package_id.in_(
                select(PackageFacet.package_id).where(
                    PackageFacet.kind == GPU, PackageFacet.package_id.in_(in_scope)
                )
            ),
            *of_catalog,
            _has_gpu(dialect),
            is_text,
            func.length(value) <= MAX_VALUE_CHARS,
        )
    )


def _search_rows(dialect: str, packages: list[ColumnElement[bool]]) -> Any:
    aggregate = func.string_agg if dialect == "postgresql" else func.group_concat
    versions = (
        select(aggregate(Version.version, literal(SEPARATOR)))
        .where(Version.package_id == Package.id)
        .scalar_subquery()
    )
    text = Package.name + SEPARATOR + Package.description + SEPARATOR + func.coalesce(versions, "")
    # lower() as the filter's icontains applies it to each part: per character, so lowering
    # the joined text is lowering each part.
    return select(Package.id, func.lower(text)).where(*packages)
