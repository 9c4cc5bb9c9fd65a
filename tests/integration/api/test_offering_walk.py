"""An offering page on PostgreSQL (syncd/api/offering_page.py): its statement holds two ways
to the page, the walk of the name index and matched_page's sort of the matches, and the
catalog-restricted facet count picks one. Whichever runs, every page, the X-Result-Count,
the 404 past the end and the empty lists are those test_offering_pages expects (computed
from the records sent), in every ordering; other orderings keep matched_page's statement.
The threshold is forced both ways (the test catalogs are too small to reach the walk)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from syncd.api import offering_page, package_list
from syncd.api.lean import packages as lean_packages
from syncd.api.lean import pg_rows
from syncd.api.lean import reads as lean_reads
from tests.integration.api.conftest import PACKAGES
from tests.integration.api.test_offering_pages import World, records
from tests.integration.test_facets import cpu, pkg, ver

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

OFFERING = "catalog_uuid={a}&cpu_family=x86_64&cpu_microarchitecture=x86_64/amd/zen2"


def _rebuild() -> None:
    """The statements are built once per offering page: built anew with the threshold set."""
    package_list._offering_statements.cache_clear()
    lean_packages._items_once.cache_clear()


@pytest.fixture
def walk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def set_walk(value: int) -> None:
        monkeypatch.setattr(offering_page, "WALK", value)
        _rebuild()

    yield set_walk
    monkeypatch.undo()
    _rebuild()


@pytest.fixture
def statements(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The statements run, through SQLAlchemy or by psycopg itself (lean/pg_rows.py)."""
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    read_text = lean_reads.read_text

    def capture_text(engine: Any, text: pg_rows.Text) -> list[Any]:
        seen.append(text.sql)
        return read_text(engine, text)

    monkeypatch.setattr(lean_reads, "read_text", capture_text)
    event.listen(world.engine, "before_cursor_execute", capture)
    yield seen
    event.remove(world.engine, "before_cursor_execute", capture)


@pytest.fixture
def world(engine: Any, client: Any) -> World:
    return World(engine, client)


@pytest.mark.parametrize("threshold", [0, 4, 10**9], ids=["walk", "default", "sort"])
def test_every_page_and_count_whichever_way_the_page_is_read(
    world: World, walk: Any, threshold: int
) -> None:
    walk(threshold)
    world.check()
    moved = [*records(2)[1:], pkg("Omega", ver("2.0", cpu("x86_64/amd/zen2", "nvidia/cc80")))]
    world.sync("a", moved)  # an incremental sync: the facets and the counts move
    world.check()


def test_an_offering_page_is_counted_within_its_catalog(
    world: World, statements: list[str]
) -> None:
    uuids = world.uuids()
    for order, composed in [
        ("", True),
        ("&o=name", True),
        ("&o=-name", True),
        ("&o=-modified", False),
    ]:
        statements.clear()
        response = world.client.get(f"{PACKAGES}?{OFFERING.format(**uuids)}{order}&page_size=2")
        assert response.status_code == 200
        (page,) = [s for s in statements if "result_count_" in s]
        assert ("WITH counted AS" in page) is composed, order
        if composed:
            count = page[page.index("WITH counted AS") : page.index("matched AS MATERIALIZED")]
            assert "FROM package_facet AS facet_0 JOIN package " in count
            assert "package.catalog_id = (SELECT catalog.id" in count


def test_a_catalog_without_the_facets_answers_an_empty_page(world: World, walk: Any) -> None:
    """The walk read every package for a catalog with no match (a Spack offering): with no
    match neither way runs; the answer is the empty first page and a 404 after it."""
    walk(0)  # would walk if anything matched
    uuids = world.uuids()
    query = f"catalog_uuid={uuids['b']}&cpu_family=x86_64&cpu_microarchitecture=nowhere/none"
    response = world.client.get(f"{PACKAGES}?{query}&page_size=2")
    assert response.status_code == 200
    assert response.json() == [] and response.headers["X-Result-Count"] == "0"
    assert world.client.get(f"{PACKAGES}?{query}&page_size=2&page=2").status_code == 404
