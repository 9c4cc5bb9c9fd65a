"""A filtered package list reads its page and its exact count with one statement
(syncd/api/package_list.py, matched_page.py), and its pages are those of the whole filtered
list in its order: every filter kind, ascending and descending orders, later pages, an empty
page, HEAD."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from tests.integration.api.conftest import PACKAGES, Sample


@pytest.fixture
def selects(engine: Engine) -> Iterator[list[str]]:
    """The SELECTs the app runs, as it runs them."""
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    yield seen
    event.remove(engine, "before_cursor_execute", capture)


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()]


FILTERS = [
    "query=o",
    "query=GRO",
    "cpu_family=x86_64",
    "cpu_microarchitecture=amd/zen2",
    "cpu_microarchitecture=amd/none",
    "has_gpu=false",
    "gpu_arch=nvidia/cc90",
    "is_extension=false",
    "catalog_uuid={eessi}",
    "catalog_uuid={eessi}&cpu_family=x86_64",
]
ORDERS = ["", "&o=-name", "&o=-catalog_name,name", "&o=created", "&o=-modified"]


@pytest.mark.parametrize("filters", FILTERS)
def test_pages_of_a_filtered_list_are_the_whole_list_in_order(
    client: TestClient, sample: Sample, filters: str
) -> None:
    filters = filters.format(eessi=sample.eessi)
    for order in ORDERS:
        whole = client.get(f"{PACKAGES}?{filters}{order}&page_size=300")
        expected = names(whole)
        count = whole.headers["X-Result-Count"]
        assert count == str(len(expected))
        pages: list[str] = []
        for number in range(1, len(expected) + 1):
            response = client.get(f"{PACKAGES}?{filters}{order}&page_size=1&page={number}")
            assert response.headers["X-Result-Count"] == count
            pages += names(response)
        assert pages == expected, order
        beyond = client.get(f"{PACKAGES}?{filters}{order}&page_size=1&page={len(expected) + 1}")
        assert beyond.status_code == (200 if not expected else 404)
        head = client.head(f"{PACKAGES}?{filters}{order}")
        assert head.headers["X-Result-Count"] == count


def test_a_filtered_page_and_its_count_are_one_statement(
    client: TestClient, sample: Sample, selects: list[str]
) -> None:
    for filters in FILTERS:
        if "none" in filters:
            continue  # an empty page: a second statement counts
        client.get(f"{PACKAGES}?{filters.format(eessi=sample.eessi)}")  # warm
        selects.clear()
        response = client.get(f"{PACKAGES}?{filters.format(eessi=sample.eessi)}&page_size=1")
        assert response.status_code == 200
        # One statement reads the list (then render() reads what the page embeds), with
        # the count as a column.
        # (This sample's rows were added by the ORM, without stored items: the lean path's
        # statement, reading them, finds none and hands the page to the route.)
        lists = [
            s
            for s in selects
            if "JOIN catalog ON catalog.id = package.catalog_id" in s and "item_head" not in s
        ]
        assert len(lists) == 1, (filters, lists)
        assert "result_count_" in lists[0]
