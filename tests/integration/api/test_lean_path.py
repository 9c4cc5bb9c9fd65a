"""The lean path of the catalog, package and version lists (issue 16) answers exactly what
the FastAPI routes answer, byte for byte, headers included: for filters, orderings, pages, empty and
invalid pages, HEAD, the public base URL; from the stored items (syncd/readmodel/items.py)
when they are fresh, through the route when one is missing or of an older FORMAT; after a
catalog's rename and a parent's change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, update

from syncd import readmodel
from syncd.api.app import create_app
from syncd.api.lean import LeanListMiddleware, pg_rows
from syncd.api.lean import catalogs as lean_catalogs
from syncd.api.lean import packages as lean_packages
from syncd.api.lean import reads as lean_reads
from syncd.api.lean import versions as lean_versions
from syncd.config import Settings
from syncd.db.tables import Catalog, PackageReadModel
from tests.integration.api.conftest import CATALOGS, PACKAGES, VERSIONS
from tests.integration.api.test_package_list_embedding import upstream as upstream
from tests.integration.api.test_package_list_embedding import with_extension
from tests.integration.api.test_software_writes_sync import Upstream, cpu, upstream_v1
from tests.support.records import version

URLS = [
    PACKAGES,
    f"{PACKAGES}?page=2&page_size=2",
    f"{PACKAGES}?page_size=2&page=3",  # past the end: 404
    f"{PACKAGES}?o=-name",
    f"{PACKAGES}?o=catalog_name,-created&page_size=3&page=2",
    f"{PACKAGES}?o=-name&o=name",
    f"{PACKAGES}?is_extension=true",
    f"{PACKAGES}?is_extension=yes",  # not a boolean: no filter, as django-filter
    f"{PACKAGES}?query=gc",
    f"{PACKAGES}?query=",
    f"{PACKAGES}?cpu_family=x86_64&cpu_family=aarch64&page_size=1",
    f"{PACKAGES}?cpu_microarchitecture=amd/zen3",
    f"{PACKAGES}?query=nothing-like-this",  # empty
    f"{PACKAGES}?page=9",
    f"{PACKAGES}?page=0",
    f"{PACKAGES}?page=x",
    f"{PACKAGES}?page_size=x&unknown=1",
    f"{PACKAGES}?o=nope",  # 400
    f"{PACKAGES}?catalog_type=nope",  # 400
    f"{PACKAGES}?catalog_uuid=not-a-uuid",
    f"{PACKAGES}?field=name&field=versions",
    VERSIONS,
    f"{VERSIONS}?page=2&page_size=2",
    f"{VERSIONS}?o=-version&version=1",
    CATALOGS,
    f"{CATALOGS}?name=hand&o=-name",
    f"{CATALOGS}?catalog_type=source_package&auto_update_enabled=false",
    f"{CATALOGS}?catalog_type=bad",
    f"{CATALOGS}?page=2",
    f"{CATALOGS}?field=name",
]

# The version list (issue 16): pages the lean path reads itself first (unfiltered, in any
# order, with a query string the Link header must repeat byte for byte), then what the
# route answers (filters it counts apart, pages past the end, invalid values, `?field=`).
VERSION_URLS = [
    VERSIONS,
    f"{VERSIONS}?page_size=2",
    f"{VERSIONS}?page=2&page_size=2",
    f"{VERSIONS}?page_size=2&page=3",
    f"{VERSIONS}?o=-version&page_size=3&page=2",
    f"{VERSIONS}?o=package_name,-release_date&o=-created&page_size=4",
    f"{VERSIONS}?page_size=1&page=2&unknown=%C3%A9+x%2By&unknown=2&page_size=2",
    f"{VERSIONS}?page_size=1&page=2&unknown=%C3%A9&version=",  # counted apart: the route
    f"{VERSIONS}?page_size=x&page=1",
    f"{VERSIONS}?page_size=2&page=99",  # past the end: 404
    f"{VERSIONS}?page=0",
    f"{VERSIONS}?page=x",
    f"{VERSIONS}?o=nope",  # 400
    f"{VERSIONS}?o=-version&version=1",
    f"{VERSIONS}?cpu_family=x86_64&page_size=1",
    f"{VERSIONS}?package_name=nothing-like-this",  # empty
    f"{VERSIONS}?catalog_type=nope",
    f"{VERSIONS}?field=version&field=uuid",
]
# Version pages with rows, read by the lean path without the route.
VERSIONS_FILLED = VERSION_URLS[:7]


def _client(settings: Settings, engine: Engine, broker: Any, *, lean: bool) -> TestClient:
    app: FastAPI = create_app(settings, engine=engine, broker=broker, adapters={}, fetcher=object())
    if not lean:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not LeanListMiddleware]
    return TestClient(app)


@pytest.fixture
def pair(
    settings: Settings, engine: Engine, broker: Any
) -> Iterator[tuple[TestClient, TestClient]]:
    with (
        _client(settings, engine, broker, lean=True) as lean,
        _client(settings, engine, broker, lean=False) as routed,
    ):
        yield lean, routed


def assert_same(pair: tuple[TestClient, TestClient], urls: list[str], **headers: str) -> None:
    lean, routed = pair
    for url in urls:
        for method in ("GET", "HEAD"):
            got, want = (c.request(method, url, headers=headers) for c in (lean, routed))
            assert_same_answer(got, want, f"{method} {url}")


# Pages with rows (from stored items, without the route).
FILLED = [url for url in URLS[:12] if "page=3" not in url]


def _no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any) -> None:
        raise AssertionError("the route answered a page of fresh items")

    monkeypatch.setattr(lean_packages, "package_page", refuse)


def assert_same_answer(got: Any, want: Any, where: str) -> None:
    """The same status, headers (in order) and bytes: the lean path answers as the route."""
    assert (got.status_code, got.headers.items(), got.content) == (
        want.status_code,
        want.headers.items(),
        want.content,
    ), where


def test_lean_answers_are_the_routes_byte_for_byte(
    pair: tuple[TestClient, TestClient], upstream: Upstream
) -> None:
    assert_same(pair, URLS)
    assert_same(pair, URLS, host="api.example:8443")
    # The links' base is memoized per origin: a Host that reshapes the URL is still read as
    # Starlette reads it, and another Host gets its own base.
    assert_same(pair, URLS[:6], host="api.example/x?y")
    assert_same(pair, URLS[:6], host="other.example")


def test_fresh_items_are_served_without_the_route(
    pair: tuple[TestClient, TestClient], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = [pair[1].get(url) for url in FILLED]
    _no_fallback(monkeypatch)
    for url, answer in zip(FILLED, want, strict=True):
        got = pair[0].get(url)
        assert (got.headers.items(), got.content) == (answer.headers.items(), answer.content)


def test_an_empty_first_page_is_answered_without_the_route(
    pair: tuple[TestClient, TestClient], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = [f"{PACKAGES}?query=nothing-like-this", f"{PACKAGES}?query=nothing&page=1&page_size=5"]
    want = [pair[1].get(url) for url in urls]
    _no_fallback(monkeypatch)
    for url, answer in zip(urls, want, strict=True):
        got = pair[0].get(url)
        assert (got.status_code, got.headers.items(), got.content) == (
            200,
            answer.headers.items(),
            answer.content,
        )
        assert (got.content, got.headers["x-result-count"]) == (b"[]", "0")


@pytest.fixture
def public_pair(
    settings: Settings, engine: Engine, broker: Any
) -> Iterator[tuple[TestClient, TestClient]]:
    """The lean and routed clients of a service whose SYNCD_PUBLIC_URL is set."""
    public = dataclasses.replace(settings, public_url="https://syncd.example/")
    with (
        _client(public, engine, broker, lean=True) as lean,
        _client(public, engine, broker, lean=False) as routed,
    ):
        yield lean, routed


def test_public_url_is_the_base_of_every_link(
    public_pair: tuple[TestClient, TestClient], upstream: Upstream
) -> None:
    assert_same(public_pair, URLS[:6])
    assert "https://syncd.example/api/" in public_pair[0].get(PACKAGES).text


def test_old_or_missing_items_are_answered_right(
    pair: tuple[TestClient, TestClient], engine: Engine, upstream: Upstream
) -> None:
    with engine.begin() as conn:
        conn.execute(update(PackageReadModel).values(format=readmodel.FORMAT - 1))
    assert_same(pair, URLS[:12])
    with engine.begin() as conn:
        conn.execute(
            update(PackageReadModel).values(format=readmodel.FORMAT, item_head=None, item_tail=None)
        )
    assert_same(pair, URLS[:12])


def test_a_renamed_catalog_and_a_changed_parent_show_at_once(
    pair: tuple[TestClient, TestClient],
    engine: Engine,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gcc, python, zlib = upstream_v1()
    python.versions.insert(0, version("3.13", cpu("amd/zen2")))
    upstream.update(with_extension([gcc, python, zlib], "1.26"))  # only the parent changed
    with engine.begin() as conn:  # after the update: the adapter is found by the name
        conn.execute(update(Catalog).values(name='Renamed "catalog" \u00e9', version="v2"))
    assert_same(pair, URLS[:12])
    _no_fallback(monkeypatch)
    numpy = {item["name"]: item for item in pair[0].get(PACKAGES).json()}["numpy"]
    assert numpy["catalog_name"] == 'Renamed "catalog" \u00e9'
    assert "3.13" in numpy["parent_softwares"][0]["versions"]


def _package_uuids(client: TestClient) -> list[str]:
    return [item["uuid"] for item in client.get(PACKAGES, params={"page_size": 100}).json()]


def test_version_list_is_the_routes_byte_for_byte(
    pair: tuple[TestClient, TestClient], upstream: Upstream
) -> None:
    assert_same(pair, VERSION_URLS)
    assert_same(pair, VERSION_URLS, host="api.example:8443")
    # One package's versions: counted along with the page, on both paths.
    for uuid in _package_uuids(pair[1]):
        assert_same(
            pair,
            [
                f"{VERSIONS}?package_uuid={uuid}",
                f"{VERSIONS}?package_uuid={uuid}&o=-version&page_size=1&page=2",
                f"{VERSIONS}?package_uuid={uuid}&page=5",
            ],
        )


def test_version_pages_are_read_without_the_route(
    pair: tuple[TestClient, TestClient], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    uuid = _package_uuids(pair[1])[0]
    urls = [*VERSIONS_FILLED, f"{VERSIONS}?package_uuid={uuid}"]
    want = [pair[1].get(url) for url in urls]

    def refuse(*_args: Any) -> None:
        raise AssertionError("the route answered a page the lean path reads")

    monkeypatch.setattr(lean_versions, "version_page", refuse)
    monkeypatch.setattr(lean_catalogs, "list_catalogs", refuse)
    for url, answer in zip([*urls, CATALOGS], [*want, pair[1].get(CATALOGS)], strict=True):
        got = pair[0].get(url)
        assert_same_answer(got, answer, url)


def test_public_url_is_the_base_of_every_version_link(
    public_pair: tuple[TestClient, TestClient], upstream: Upstream
) -> None:
    assert_same(public_pair, VERSION_URLS[:7])
    answer = public_pair[0].get(f"{VERSIONS}?page_size=1")
    assert answer.json()[0]["url"].startswith("https://syncd.example/api/")
    assert answer.headers["link"].startswith("<https://syncd.example/api/")


def test_authenticated_callers_take_the_route(
    pair: tuple[TestClient, TestClient], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request with an Authorization header is the FastAPI route's (its reader dependency
    decides), whatever the token; the lean answers are never called for it."""
    urls = URLS + VERSION_URLS
    want = {url: pair[1].get(url, headers={"Authorization": "Token nope"}) for url in urls}

    def refuse(*_args: Any) -> None:
        raise AssertionError("the lean path answered an authenticated request")

    monkeypatch.setattr(lean_versions, "read_rows", refuse)
    monkeypatch.setattr(lean_packages, "read_rows", refuse)
    monkeypatch.setattr(lean_catalogs, "read_rows", refuse)
    for url, answer in want.items():
        got = pair[0].get(url, headers={"Authorization": "Token nope"})
        assert_same_answer(got, answer, url)


def test_unfiltered_pages_are_read_by_statements_without_parameters(
    pair: tuple[TestClient, TestClient],
    engine: Engine,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LIMIT, OFFSET and the stored count's 0 are written into the SQL (pagination.page_bound):
    a prepared statement with no parameter is planned once by PostgreSQL, where a bound LIMIT
    had it planned again at every execution."""
    pages: list[Any] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        if "LIMIT" in statement:
            pages.append(params)

    read_text = lean_reads.read_text

    def record_text(engine: Engine, text: pg_rows.Text) -> list[Any]:
        record(None, None, text.sql, text.params)
        return read_text(engine, text)

    monkeypatch.setattr(lean_reads, "read_text", record_text)
    event.listen(engine, "before_cursor_execute", record)
    try:
        for url in (CATALOGS, PACKAGES, f"{VERSIONS}?page=2&page_size=2"):
            assert pair[0].get(url).status_code == 200, url
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(pages) == 3 and not any(pages), pages


# Pages of statements built once, which PostgreSQL reads through psycopg (lean/pg_rows.py):
# unfiltered lists in their default order, several pages and sizes, the last page, an
# offering page (one catalog, a stored facet), and pages past the end (empty: the route).
RAW_URLS = [
    CATALOGS,
    f"{CATALOGS}?page_size=1",
    f"{CATALOGS}?page_size=1&page=2",  # one catalog: past the end
    f"{CATALOGS}?page=5",
    PACKAGES,
    f"{PACKAGES}?page_size=1",
    f"{PACKAGES}?page_size=1&page=3",
    f"{PACKAGES}?page_size=2&page=2&unknown=%C3%A9+x",
    f"{PACKAGES}?page_size=2&page=3",
    f"{PACKAGES}?page=7",
    VERSIONS,
    f"{VERSIONS}?page_size=2",
    f"{VERSIONS}?page_size=1&page=4",
    f"{VERSIONS}?page_size=3&page=2",
    f"{VERSIONS}?page=40",
]


def test_statements_built_once_are_read_by_psycopg_byte_for_byte(
    pair: tuple[TestClient, TestClient], engine: Engine, upstream: Upstream
) -> None:
    """On PostgreSQL a page of a statement built once is read through psycopg, not
    SQLAlchemy's Connection (no statement passes its execute events), and answers the
    route's bytes, twice (the second time from the compiled text); SQLite reads the same
    pages through SQLAlchemy."""
    catalog = _catalog_uuid(pair[1])
    offering = f"{PACKAGES}?catalog_uuid={catalog}&cpu_family=x86_64"
    urls = [*RAW_URLS, offering, f"{offering}&page_size=1&page=2", f"{offering}&page=3"]
    want = {url: pair[1].get(url) for url in urls}
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(2):
            for url, answer in want.items():
                got = pair[0].get(url)
                assert_same_answer(got, answer, url)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    filled = [url for url, got in want.items() if got.status_code == 200 and got.content != b"[]"]
    assert len(filled) >= 12, filled
    if engine.dialect.name == "postgresql":
        for url in filled:
            seen.clear()
            event.listen(engine, "before_cursor_execute", record)
            try:
                pair[0].get(url)
            finally:
                event.remove(engine, "before_cursor_execute", record)
            assert seen == [], url
    assert_same(pair, urls)


def _catalog_uuid(client: TestClient) -> str:
    items = client.get(PACKAGES, params={"page_size": 1}).json()
    return str(items[0]["catalog_uuid"])
