"""The package list's statements for `paginated`: its page query and how it is counted.

- No filter: the catalogs' stored package counts (software_queries.stored_count_query).
- Only `catalog_uuid`: that catalog's stored package count (kept by the sync and by hand
  writes in their transactions, as the unfiltered total is), and the page read through the
  name index.
- A filter that scans text or JSON (`query`, `name`, the version metadata filters...), or a
  catalog filter with others (an offering page: the planner, multiplying the selectivities
  of correlated facets, expects 41 of 3,144 packages and sorts them all anyway): the page
  and its exact count from one evaluation of the filters (matched_page), instead of a count
  statement and a page statement each evaluating them.
- Otherwise on PostgreSQL (stored facets, category/license, is_extension...): the page as
  the planner reads it
  (for a broad filter, the name index until the page is full) and the count as a
  subquery of the same statement, over the package table alone (for the facet filters an
  index-only count). One round trip; the filters are probes, cheap to run twice, while
  the matched set's sort keys (thousands of package rows for an offering) are not.
  SQLite's plans for that statement evaluated the filters per row of the walk and of the
  count: matched_page measured 1.2-2.4x faster there (docs/performance.md). When every
  filter is a stored facet match (the portal's CPU filters), the count reads the facet
  index alone (facet_count).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy import Select, func, select

from syncd.api.facet_count import facet_conditions, facet_count
from syncd.api.filters import parse_ordering
from syncd.api.matched_page import matched_page
from syncd.api.offering_page import offering_page, walkable
from syncd.api.software_filters import PACKAGE_ORDERING, PackageFilters, _catalog_id
from syncd.api.software_queries import (
    PACKAGE_DEFAULT_ORDER,
    package_conditions,
    package_query,
    package_select,
    stored_count_query,
)
from syncd.db.tables import Catalog, Package


def package_list_query(
    dialect: str, f: PackageFilters, o: Sequence[str] | None = None
) -> tuple[Select, Select | None]:
    """(query, count_query) of the package list for `paginated` (a matched_page query needs
    `page_end_` bound too; paginated binds it)."""
    stored = stored_count_query(f, "package_count")
    if stored is not None:
        return package_query(dialect, f, o), stored
    if f.catalog_uuid is not None and f.model_copy(update={"catalog_uuid": None}) == _NONE:
        count = select(func.coalesce(func.sum(Catalog.package_count), 0)).where(
            Catalog.uuid == f.catalog_uuid
        )
        return package_query(dialect, f, o), count
    offering = _offering_page(dialect, f, o)
    if offering is not None:
        return offering
    where = package_conditions(dialect, f)
    catalog = any(getattr(f, name) is not None for name in _ON_CATALOG)
    if dialect != "postgresql" or catalog or any(getattr(f, name) for name in _SCANS):
        ordering = [*(parse_ordering(o, PACKAGE_ORDERING) or PACKAGE_DEFAULT_ORDER), Package.id]
        composed = matched_page(package_select(), where, ordering, Package.id)
        if composed is not None:
            return composed
    by_facets = facet_count(f)
    if by_facets is not None:
        return package_query(dialect, f, o), by_facets
    counted = select(func.count()).select_from(Package)
    # correlate(None): the count is of its own rows, never of the page row it is read with.
    return package_query(dialect, f, o), counted.where(*where).correlate(None)


def _offering_page(
    dialect: str, f: PackageFilters, o: Sequence[str] | None
) -> tuple[Select, Select] | None:
    """An offering page's statements (offering_page.py), built once; None for another list."""
    if not built_once(dialect, f, o):
        return None
    return _offering_statements(f.model_dump_json(exclude_none=True), tuple(o or ()))


def built_once(dialect: str, f: PackageFilters, o: Sequence[str] | None) -> bool:
    """Whether package_list_query returns statements it built once for these arguments (the
    same objects every time: the lean path builds its statement around them once too): an
    offering page on PostgreSQL, `catalog_uuid` the only catalog filter, the others stored
    facets, an ordering an index serves."""
    if dialect != "postgresql" or f.catalog_uuid is None or not walkable(o):
        return False
    others = f.model_copy(update={"catalog_uuid": None})
    if any(getattr(others, name) is not None for name in _ON_CATALOG):
        return False
    return facet_conditions(others) is not None


@functools.lru_cache(maxsize=512)
def _offering_statements(filters: str, o: tuple[str, ...]) -> tuple[Select, Select] | None:
    """Built once per offering page's filters (JSON: hashable) and ordering: building them
    took ~2 ms of Python, more than PostgreSQL's run of a prepared one (and SQLAlchemy finds
    the compiled form of a statement it has seen at once). A few hundred at most: catalogs
    x the CPU values of their targets x 5 orderings."""
    f = PackageFilters.model_validate_json(filters)
    assert f.catalog_uuid is not None
    facets = f.model_copy(update={"catalog_uuid": None})
    count = facet_count(facets, _catalog_id(f.catalog_uuid))
    assert count is not None
    ordering = [*(parse_ordering(list(o), PACKAGE_ORDERING) or PACKAGE_DEFAULT_ORDER), Package.id]
    # The catalog by its id (uuid is unique): the matches need no join to the catalog.
    catalog = Package.catalog_id == _catalog_id(f.catalog_uuid)
    where = [catalog, *package_conditions("postgresql", facets)]
    narrow = select(Package.id).select_from(Package)
    return offering_page(package_select(), narrow, where, ordering, Package.id, count)


_NONE = PackageFilters()
# Filters read by scanning a text or JSON per package (or per version).
_SCANS = (
    "query",
    "name",
    "name_exact",
    "description",
    "has_version",
    "extension_type",
    "extension_name",
    "toolchain_families_compatibility",
)
# Filters on the catalog (those reading the catalog table's columns among them: the count of
# the other path reads the package table alone).
_ON_CATALOG = ("catalog_uuid", "offering_uuid", "catalog_name", "catalog_version", "catalog_type")
