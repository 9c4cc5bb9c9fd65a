"""An offering's page (catalog + CPU filters) and the CPU, GPU and toolchain filters answer
every page and X-Result-Count of the whole filtered list in its order, on SQLite and
PostgreSQL, from synced catalogs (the lean path's stored items): every ordering, pages past
the first and past the end, after an incremental sync that adds and removes targets, after a
catalog's deletion. The matches are computed here from the records sent; the order from the
packages' stored keys (lower(name), name, catalog name, modified; ties by id).

On PostgreSQL a list filtered by stored facets alone is counted from package_facet's index,
without the package table (syncd/api/facet_count.py), and the planner knows how many
packages a facet has (migration 0022's statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, event, select, text

from syncd.db.tables import Catalog, Package
from syncd.domain import PackageRecord, TargetRecord
from syncd.sync import sync_catalog
from tests.integration.api.conftest import PACKAGES
from tests.integration.test_facets import cpu, new_catalog, pkg, ver
from tests.support.records import catalog_info, snapshot

Match = Callable[[str, list[TargetRecord], list[str]], bool]
ORDERS = ["", "name", "-name", "catalog_name", "-catalog_name", "-modified"]
MICROS = ["x86_64/amd/zen2", "x86_64/amd/zen3", "aarch64/neoverse_v1"]
ODD = "o'd\\d%\""


def records(shift: int) -> list[PackageRecord]:
    """Packages with mixed-case names (lower(name) and name orders differ) and targets that
    vary per package; `shift` moves which microarchitectures each package has."""
    out = []
    for i in range(14):
        name = ["Alpha", "beta", "Gamma", "delta", "EPS", "zeta", "Eta"][i % 7] + f"{i:02d}"
        micros = [m for j, m in enumerate(MICROS) if (i + j + shift) % 3 != 0]
        gpus = ["nvidia/cc80"] if i % 4 == 0 else []
        targets = [cpu(m, *gpus) if k == 0 else cpu(m) for k, m in enumerate(micros)]
        if i % 5 == 0:  # quotes, a backslash and a percent sign: written into the SQL
            targets.append(cpu(ODD + "/x"))
        out.append(pkg(name, ver("1.0", *targets, toolchain=["foss", "GCC"][i % 2])))
    return out


def _targets(p: PackageRecord) -> list[TargetRecord]:
    return [t for v in p.versions for t in v.targets]


def _toolchains(p: PackageRecord) -> list[str]:
    return [v.metadata["toolchain"]["name"] for v in p.versions if v.metadata.get("toolchain")]


FILTERS: dict[str, Match] = {
    "cpu_family=x86_64": lambda c, ts, tc: any(t.target_name == "x86_64" for t in ts),
    "cpu_microarchitecture=x86_64/amd/zen2": lambda c, ts, tc: any(
        t.target_subtype == "x86_64/amd/zen2" for t in ts
    ),
    "cpu_family=aarch64&cpu_microarchitecture=x86_64/amd/zen3": lambda c, ts, tc: (
        any(t.target_name == "aarch64" for t in ts)
        and any(t.target_subtype == "x86_64/amd/zen3" for t in ts)
    ),
    "cpu_family=x86_64&cpu_family=aarch64": lambda c, ts, tc: any(
        t.target_name in ("x86_64", "aarch64") for t in ts
    ),
    "has_gpu=true&toolchain_name=foss": lambda c, ts, tc: (
        any(t.gpu_architectures for t in ts) and "foss" in tc
    ),
    "gpu_arch=nvidia/cc80": lambda c, ts, tc: any("nvidia/cc80" in t.gpu_architectures for t in ts),
    "cpu_family=o'd%5Cd%25%22&cpu_microarchitecture=o'd%5Cd%25%22/x": lambda c, ts, tc: any(
        t.target_name == ODD for t in ts
    ),
    "cpu_family=o%25": lambda c, ts, tc: False,
    # The offering pages.
    "catalog_uuid={a}&cpu_family=x86_64&cpu_microarchitecture=x86_64/amd/zen2": lambda c, ts, tc: (
        c == "a"
        and any(t.target_name == "x86_64" for t in ts)
        and any(t.target_subtype == "x86_64/amd/zen2" for t in ts)
    ),
    "catalog_uuid={b}&cpu_microarchitecture=aarch64/neoverse_v1": lambda c, ts, tc: (
        c == "b" and any(t.target_subtype == "aarch64/neoverse_v1" for t in ts)
    ),
}


class World:
    """Two synced catalogs, the records each was sent, and a client."""

    def __init__(self, engine: Engine, client: TestClient) -> None:
        self.engine, self.client = engine, client
        self.ids = {"a": new_catalog(engine, "2023.06"), "b": new_catalog(engine, "2025.06")}
        self.sent: dict[str, list[PackageRecord]] = {}
        self.sync("a", records(0))
        self.sync("b", records(1))

    def sync(self, key: str, packages: list[PackageRecord]) -> None:
        info = catalog_info("EESSI", "2023.06" if key == "a" else "2025.06")
        sync_catalog(self.engine, self.ids[key], snapshot(packages, info=info))
        self.sent[key] = packages

    def uuids(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Catalog.id, Catalog.uuid)).all()
        by_id = {row.id: row.uuid.hex for row in rows}
        return {key: by_id.get(catalog_id, "0" * 32) for key, catalog_id in self.ids.items()}

    def expected(self, match: Match, order: str) -> list[tuple[str, str]]:
        """(catalog version, name) of the matching packages in the list's order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Package.id, Package.name, Package.modified, Catalog.id.label("cid"))
                .add_columns(Catalog.name.label("cname"), Catalog.version)
                .join(Catalog, Catalog.id == Package.catalog_id)
            ).all()
        keys = {catalog_id: key for key, catalog_id in self.ids.items()}
        sent = {(k, p.name): p for k, packages in self.sent.items() for p in packages}
        found = [
            r
            for r in rows
            if match(keys[r.cid], _targets(p := sent[keys[r.cid], r.name]), _toolchains(p))
        ]
        key: dict[str, Callable[[Any], Any]] = {
            "": lambda r: r.name.lower(),
            "name": lambda r: r.name,
            "catalog_name": lambda r: r.cname,
            "modified": lambda r: r.modified,
        }
        descending = order.startswith("-")
        sort_key = key[order.lstrip("-")]
        # Ties by id ascending whatever the direction: two stable sorts.
        found.sort(key=lambda r: r.id)
        found.sort(key=sort_key, reverse=descending)
        return [(r.version, r.name) for r in found]

    def check(self) -> None:
        uuids = self.uuids()
        for filters, match in FILTERS.items():
            query = filters.format(**uuids)
            for order in ORDERS:
                o = f"&o={order}" if order else ""
                expected = self.expected(match, order)
                pages: list[tuple[str, str]] = []
                last = (len(expected) + 2) // 3
                for number in range(1, last + 2):
                    response = self.client.get(f"{PACKAGES}?{query}{o}&page_size=3&page={number}")
                    if number > max(last, 1):
                        assert response.status_code == 404, (query, order)
                        continue
                    assert response.status_code == 200, response.text
                    assert response.headers["X-Result-Count"] == str(len(expected)), (query, o)
                    pages += [(i["catalog_version"], i["name"]) for i in response.json()]
                assert pages == expected, (query, order)


@pytest.fixture
def world(engine: Engine, client: TestClient) -> World:
    return World(engine, client)


def test_pages_and_counts_after_syncs_and_a_catalog_deletion(world: World) -> None:
    world.check()
    # An incremental sync: each package's microarchitectures move (targets added and
    # removed), one package leaves, one arrives.
    moved = [*records(2)[1:], pkg("Omega", ver("2.0", cpu("x86_64/amd/zen2", "nvidia/cc80")))]
    world.sync("a", moved)
    world.check()
    with world.engine.begin() as conn:
        conn.execute(delete(Catalog).where(Catalog.id == world.ids["b"]))
    del world.sent["b"]
    world.check()


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    yield seen
    event.remove(engine, "before_cursor_execute", capture)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_facet_filtered_list_is_counted_from_the_facet_index(
    world: World, statements: list[str]
) -> None:
    for query in ("cpu_family=x86_64", "cpu_family=aarch64&cpu_microarchitecture=x86_64/amd/zen3"):
        statements.clear()
        response = world.client.get(f"{PACKAGES}?{query}&page_size=2")
        assert response.status_code == 200
        (page,) = [s for s in statements if "result_count_" in s]
        count = page[page.index("(SELECT count") : page.index("AS result_count_")]
        assert "FROM package_facet AS facet_0" in count
        assert "FROM package " not in count and "JOIN package " not in count


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_planner_knows_a_facets_package_count(world: World) -> None:
    with world.engine.begin() as conn:
        conn.execute(text("ANALYZE package_facet"))
        actual = conn.execute(
            text(
                "SELECT count(*) FROM package_facet WHERE kind = 'cpu_family' AND value = 'x86_64'"
            )
        ).scalar_one()
        plan = conn.execute(
            text(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM package_facet"
                " WHERE kind = 'cpu_family' AND value = 'x86_64'"
            )
        ).scalar_one()
    # Without the pair's statistics: the product of the columns' frequencies (a third).
    assert plan[0]["Plan"]["Plan Rows"] == actual
