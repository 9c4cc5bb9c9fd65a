"""The count of a package list filtered by stored facets alone (the portal's CPU, GPU and
toolchain filters without a catalog), read from package_facet's index alone.

The list's own count (`SELECT count(*) FROM package WHERE EXISTS (facet) ...`) joined every
package to the facet rows: for `cpu_microarchitecture=intel/sapphirerapids` an index-only
scan of all 12,057 package ids hashed against the 3,144 facet rows (3.3 ms of a 4 ms
statement). A facet row exists only for an existing package (migration 0025's trigger), and a
package's rows of one (kind, value) are one row (the primary key), so counting the first
facet's index range, each other facet a probe or a merge of its range, counts the same
packages without reading the package table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, String, bindparam, exists, func, literal, select

from syncd.api.software_filters import PackageFilters
from syncd.db.tables import Package, PackageFacet
from syncd.readmodel import facets


def facet_match(facet: Any, kind: str, values: Sequence[str]) -> list[ColumnElement[bool]]:
    """`facet` (PackageFacet or an alias) is of `kind` with one of `values`, the two written
    into the statement's text rather than bound: psycopg prepares a statement run 5 times,
    and PostgreSQL's generic plan of a prepared statement does not know the values, so it
    estimated a facet at 357 rows instead of 3,144 and probed the package table per match
    (the plan migration 0022's statistics fix for known values). The values are SQL string
    literals (quoted by SQLAlchemy), as LIMIT values are in other dialects."""
    return [
        facet.kind == literal(kind, String, literal_execute=True),
        facet.value.in_(
            bindparam(None, list(values), type_=String, expanding=True, literal_execute=True)
        ),
    ]


def facet_conditions(f: PackageFilters) -> list[tuple[str, Sequence[str]]] | None:
    """(kind, values) of each filter of `f` when every filter set is a stored-facet match
    (as software_queries.package_conditions reads it); None otherwise."""
    conditions: list[tuple[str, Sequence[str]]] = []
    for name, value in f:
        if value is None:
            continue
        if name == "cpu_family" and value:
            conditions.append((facets.CPU_FAMILY, value))
        elif name == "cpu_microarchitecture" and value:
            conditions.append((facets.CPU_MICROARCHITECTURE, value))
        elif name == "gpu_arch" and value:
            conditions.append((facets.GPU_ARCH, [value]))
        elif name == "toolchain_name" and value:
            conditions.append((facets.TOOLCHAIN, [value]))
        elif name == "has_gpu" and value is True:
            conditions.append((facets.GPU, [""]))
        else:  # another filter, an empty value, has_gpu=false (a NOT EXISTS)
            return None
    if not conditions or not all(facets.stored(v) for _, vs in conditions for v in vs):
        return None  # no filter, or a value the scan answers
    return conditions


def facet_count(f: PackageFilters, catalog_id: Any = None) -> Select | None:
    """The number of packages `f` matches, from the facet index alone; None when a filter
    is not a stored facet match. With `catalog_id` (an expression of one catalog's id), of
    that catalog's packages only: the first facet's range merged with the catalog's range
    of ix_package_catalog_id (migration 0023), both in package id order."""
    conditions = facet_conditions(f)
    if conditions is None:
        return None
    (kind, values), *others = conditions
    # Aliases of the table, not of the mapped class: an ORM alias adapts every column it is
    # asked for, which was half the Python time of building an offering page's statements.
    table = PackageFacet.__table__
    first = table.alias("facet_0").c
    # One row per package of the first facet, unless it lists several values.
    counted = func.count() if len(values) == 1 else func.count(first.package_id.distinct())
    where = facet_match(first, kind, values)
    for i, (other_kind, other_values) in enumerate(others, 1):
        other = table.alias(f"facet_{i}").c
        where.append(
            exists(
                select(1).where(
                    *facet_match(other, other_kind, other_values),
                    other.package_id == first.package_id,
                )
            )
        )
    counting = select(counted.label("n")).select_from(first.package_id.table)
    if catalog_id is not None:
        counting = counting.join(Package.__table__, Package.id == first.package_id)
        where.append(Package.catalog_id == catalog_id)
    # correlate(None): the count is of its own rows, never of the page row it is read with.
    return counting.where(*where).correlate(None)
