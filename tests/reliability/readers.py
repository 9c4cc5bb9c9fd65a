"""What an API reader sees of one catalog, and the check that it never saw a partial one."""

from __future__ import annotations

from typing import Any

import httpx

CATALOGS = "/api/marketplace-software-catalogs/"
PACKAGES = "/api/marketplace-software-packages/"
VERSIONS = "/api/marketplace-software-versions/"

ABSENT: tuple[Any, ...] = ("absent",)


def catalog_probe(name: str) -> Any:
    """A probe for ApiPoller: the catalog's counts and the sizes of its package/version lists.

    The three numbers of the catalog row come from one response (one snapshot); the list
    sizes come from two more requests, each its own snapshot.
    """

    def probe(client: httpx.Client) -> tuple[Any, ...]:
        r = client.get(CATALOGS, params={"name": name})
        r.raise_for_status()
        items = [c for c in r.json() if c["name"] == name]
        if not items:
            return ABSENT
        assert len(items) == 1, f"two catalogs named {name}: {items}"
        c = items[0]
        sizes = []
        for path in (PACKAGES, VERSIONS):
            listed = client.get(path, params={"catalog_uuid": c["uuid"], "page_size": 1})
            listed.raise_for_status()
            sizes.append(int(listed.headers["X-Result-Count"]))
        return (
            "present",
            (c["package_count"], c["version_count"], c["target_count"]),
            sizes[0],
            sizes[1],
        )

    return probe


def partial_states(
    states: set[tuple[Any, ...]], complete: list[tuple[int, int, int]]
) -> list[tuple[Any, ...]]:
    """The observed states that are not one of the complete catalogs.

    `complete` lists the (packages, versions, targets) of every state a reader may see: the
    catalog before and after (an import starts from an empty row, (0, 0, 0)). The catalog
    row's counts must be one of them as a whole; each list size must be the package or
    version count of one of them (separate requests may straddle a commit, so the row and
    the lists may legitimately come from two different complete states).
    """
    bad = []
    for state in states:
        if state == ABSENT:
            continue
        _, counts, packages, versions = state
        if (
            tuple(counts) not in complete
            or packages not in {c[0] for c in complete}
            or versions not in {c[1] for c in complete}
        ):
            bad.append(state)
    return bad
