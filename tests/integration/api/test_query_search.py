"""`query` answers as Waldur's icontains over the name, the description or a version did,
whichever way the stored search text is read (query_search.query_condition: a strpos
scan for 1-2 characters on PostgreSQL, LIKE through the trigram index of migration 0021 for
longer values, LIKE on SQLite): the same rows, in the same order, with the exact count, for
short and long values, any case, `%`, `_` and `/` taken literally, with other filters, and
after a write changed the text."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from syncd.db.engine import make_engine
from syncd.db.tables import Catalog, Package, Version
from syncd.readmodel.facets import refresh_facets
from tests.integration.api.conftest import PACKAGES, Sample

# name -> (description, versions); ASCII case only (SQLite's lower() folds ASCII only, as
# its LIKE did before the search text existed).
EXTRA: dict[str, tuple[str, list[str]]] = {
    "Lib_Foo%Bar": ("Parses 100% of FOO/bar files", ["1.2_rc1", "2.0-BETA"]),
    "libfoo": ("A foo library", ["0.9"]),
    "py-rasterio": ("Raster I/O for Python", ["1.3.9"]),
    "r-a4base": ("Automated Affymetrix Array Analysis", ["1.50.0"]),
    "straße": ("übersetzung der wörter", ["1_0"]),
}

QUERIES = [
    "f",  # one character
    "O",
    "fo",  # two
    "FO",
    "py",
    "r-",
    "1.",
    "_",  # literal wildcards, short and long
    "%",
    "0%",
    "o%b",
    "_rc",
    "/",
    "o/b",
    "foo",  # three and more: the index on PostgreSQL
    "FOO",
    "py-ra",
    "r-a4ba",
    "raster i/o",
    "2.0-beta",
    "arrays",
    "straß",
    "übers",
    "aß",
    "nothing-like-this",
]


@pytest.fixture
def extra(sample: Sample, session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        spack = session.scalars(select(Catalog).where(Catalog.uuid == sample.spack)).one()
        for name, (description, versions) in EXTRA.items():
            package = Package(catalog_id=spack.id, name=name, description=description)
            session.add(package)
            session.flush()
            for index, version in enumerate(versions):
                session.add(
                    Version(
                        package_id=package.id,
                        catalog_id=spack.id,
                        version=version,
                        sort_index=index,
                    )
                )
        session.flush()
        refresh_facets(session.connection(), None, None)
        session.commit()


def expected(session_factory: sessionmaker[Session], value: str, **where: Any) -> list[str]:
    """Waldur's semantics computed here: names of the packages whose name, description or a
    version contains `value`, case-insensitively, ordered as the list is (lower(name), id)."""
    needle = value.lower()
    with session_factory() as session:
        query = select(Package).join(Catalog, Catalog.id == Package.catalog_id)
        if "catalog" in where:
            query = query.where(Catalog.uuid == where["catalog"])
        rows = session.scalars(query).all()
        versions: dict[int, list[str]] = {}
        for package_id, version in session.execute(select(Version.package_id, Version.version)):
            versions.setdefault(package_id, []).append(version)
        found = [
            p
            for p in rows
            if needle in p.name.lower()
            or needle in (p.description or "").lower()
            or any(needle in v.lower() for v in versions.get(p.id, []))
        ]
    return [p.name for p in sorted(found, key=lambda p: (p.name.lower(), p.id))]


def listed(client: TestClient, params: dict[str, Any]) -> tuple[list[str], str]:
    response = client.get(PACKAGES, params={**params, "page_size": 300})
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()], response.headers["X-Result-Count"]


@pytest.mark.parametrize("value", QUERIES)
def test_query_matches_name_description_or_version_case_insensitively(
    client: TestClient, session_factory: sessionmaker[Session], extra: None, value: str
) -> None:
    want = expected(session_factory, value)
    names, count = listed(client, {"query": value})
    assert names == want
    assert count == str(len(want))


def test_query_results_do_not_depend_on_its_length_path(
    client: TestClient, session_factory: sessionmaker[Session], extra: None
) -> None:
    """Every prefix of a name (the portal's search box, as typed): 1-2 characters take the
    scan, longer ones the index; each answer is a superset of the next one's."""
    previous: set[str] | None = None
    for end in range(len("py-rasterio"), 0, -1):
        value = "py-rasterio"[:end]
        names, count = listed(client, {"query": value})
        assert names == expected(session_factory, value)
        assert count == str(len(names))
        assert previous is None or previous <= set(names)
        previous = set(names)


@pytest.mark.parametrize("value", ["o", "py", "foo", "PY-RA", "1.2_"])
@pytest.mark.parametrize("order", ["name", "-name", "catalog_name", "-modified"])
def test_query_with_other_filters_and_orders_pages_exactly(
    client: TestClient,
    session_factory: sessionmaker[Session],
    sample: Sample,
    extra: None,
    value: str,
    order: str,
) -> None:
    params = {"query": value, "catalog_uuid": sample.spack.hex, "o": order}
    names, count = listed(client, params)
    assert sorted(names) == sorted(expected(session_factory, value, catalog=sample.spack))
    assert count == str(len(names))
    pages = []
    for page in range(1, len(names) + 1):
        response = client.get(PACKAGES, params={**params, "page_size": 1, "page": page})
        assert response.headers["X-Result-Count"] == count
        pages += [item["name"] for item in response.json()]
    assert pages == names
    # An offering page with a query: only EESSI's packages have CPU targets.
    offering = {"query": value, "catalog_uuid": sample.eessi.hex, "cpu_family": "x86_64"}
    names, count = listed(client, offering)
    eessi = set(expected(session_factory, value, catalog=sample.eessi))
    assert set(names) <= eessi
    assert count == str(len(names))


def test_query_follows_a_write_of_the_text(
    client: TestClient,
    session_factory: sessionmaker[Session],
    sample: Sample,
    staff: dict[str, str],
    extra: None,
) -> None:
    """A hand write refreshes the touched package's search text in its transaction (as a
    sync's incremental refresh does): the next query sees the new text, not the old one."""
    python = f"{PACKAGES}{sample.packages['python'].hex}/"
    edited = client.patch(python, json={"description": "Zyxwv interpreter"}, headers=staff)
    assert edited.status_code == 200, edited.text
    for value, want in (("zyxwv", ["python"]), ("zy", ["python"]), ("Python language", [])):
        names, count = listed(client, {"query": value})
        assert names == want == expected(session_factory, value), value
        assert count == str(len(want))


def test_long_queries_can_use_the_trigram_index(pg_url: str) -> None:
    """PostgreSQL: migration 0021's index answers LIKE '%foo%' (the planner's choice, here
    forced: a tiny table is otherwise scanned)."""
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = conn.execute(
            text("EXPLAIN SELECT package_id FROM package_search WHERE search_text LIKE '%foo%'")
        ).all()
    engine.dispose()
    assert "ix_package_search_trgm" in "\n".join(row[0] for row in plan)
