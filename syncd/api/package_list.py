"""The package list's statements for `paginated`: its page query and how it is counted.

- No filter: the catalogs' stored package counts (software_queries.stored_count_query).
- Only `catalog_uuid`: that catalog's stored package count (kept by the sync and by hand
  writes in their transactions, as the unfiltered total is), and the page read through the
  name index.
- Any other filter: the page and its exact count from one evaluation of the filters
  (matched_page), instead of a count statement and a page statement each evaluating them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, select

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
    ordering = [*(parse_ordering(o, PACKAGE_ORDERING) or PACKAGE_DEFAULT_ORDER), Package.id]
    composed = matched_page(package_select(), package_conditions(dialect, f), ordering, Package.id)
    return composed or (package_query(dialect, f, o), None)


_NONE = PackageFilters()
