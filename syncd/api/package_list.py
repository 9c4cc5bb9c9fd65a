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

from collections.abc import Sequence

from sqlalchemy import Select, func, select

from syncd.api.facet_count import facet_count
from syncd.api.filters import parse_ordering
from syncd.api.matched_page import matched_page
from syncd.api.software_filters import PACKAGE_ORDERING, PackageFilters
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
