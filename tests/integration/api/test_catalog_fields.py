"""Catalog fields validated as Waldur's SoftwareCatalogSerializer validates them.

Waldur's model (marketplace/models.py): `source_url = models.URLField(blank=True)` (Django's
default max_length, 200; DRF answers "Enter a valid URL." for what is no URL) and
`metadata = models.JSONField(default=dict, blank=True)` (not nullable: DRF answers "This
field may not be null."). syncd's stricter source policy (http, https, file:// only when
allowed; no private networks) stays, its refusals in the same {field: [message]} shape.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.conftest import CATALOGS
from tests.integration.api.test_commands import IMPORT

TOO_LONG = "Ensure this field has no more than 200 characters."
INVALID_URL = "Enter a valid URL."
NOT_NULL = "This field may not be null."

NOT_URLS = [
    "not a url",
    "example.org/catalog.json",
    "http://",
    "https://exa mple.org/x",
    "http://example/x",  # no top-level domain
    "https://[::1/x",
    "http://example.org:99999/x",
    "http://999.1.1.1/",
    "://example.org/",
]


def _url_of_length(length: int) -> str:
    head = "https://mirror.example.org/"
    return head + "a" * (length - len(head))


def _writes(client: TestClient, staff: dict[str, str], field: str, value: Any) -> list[Any]:
    """`field` = `value` through create, PUT and PATCH (of a catalog made for it)."""
    made = client.post(CATALOGS, json={"name": uuid4().hex, "version": "1"}, headers=staff)
    assert made.status_code == 201, made.text
    url = f"{CATALOGS}{made.json()['uuid']}/"
    return [
        client.post(
            CATALOGS, json={"name": uuid4().hex, "version": "1", field: value}, headers=staff
        ),
        client.put(
            url, json={"name": made.json()["name"], "version": "1", field: value}, headers=staff
        ),
        client.patch(url, json={field: value}, headers=staff),
    ]


def _imports(client: TestClient, staff: dict[str, str], value: str) -> list[tuple[str, Any]]:
    return [
        (field, client.post(IMPORT, json={"name": "Spack", field: value}, headers=staff))
        for field in ("source_url", "source")
    ]


def test_source_url_is_at_most_200_characters(client: TestClient, staff: dict[str, str]) -> None:
    for response in _writes(client, staff, "source_url", _url_of_length(201)):
        assert response.status_code == 400
        assert response.json() == {"source_url": [TOO_LONG]}
    for field, response in _imports(client, staff, _url_of_length(201)):
        assert response.status_code == 400 and response.json() == {field: [TOO_LONG]}
    fits = _url_of_length(200)
    created, put, patch = _writes(client, staff, "source_url", fits)
    assert (created.status_code, put.status_code, patch.status_code) == (201, 200, 200)
    assert created.json()["source_url"] == fits == patch.json()["source_url"]


@pytest.mark.parametrize("text", NOT_URLS)
def test_text_that_is_no_url_is_enter_a_valid_url(
    client: TestClient, staff: dict[str, str], text: str
) -> None:
    for response in _writes(client, staff, "source_url", text):
        assert response.status_code == 400
        assert response.json() == {"source_url": [INVALID_URL]}
    for field, response in _imports(client, staff, text):
        assert response.status_code == 400 and response.json() == {field: [INVALID_URL]}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://mirror.example.org/r.json", "only http, https and file URLs are allowed"),
        ("gopher://mirror.example.org/", "only http, https and file URLs are allowed"),
        ("file:///srv/mirror/r.json", "file:// sources are disabled"),
        ("http://127.0.0.1/r.json", "refused"),
        ("http://[::1]:8080/r.json", "refused"),
    ],
)
def test_syncds_stricter_policy_answers_in_drfs_shape(
    client: TestClient, staff: dict[str, str], url: str, reason: str
) -> None:
    for response in [*_writes(client, staff, "source_url", url)]:
        assert response.status_code == 400
        body = response.json()
        assert list(body) == ["source_url"] and len(body["source_url"]) == 1
        assert isinstance(body["source_url"][0], str) and reason in body["source_url"][0]
        assert body["source_url"] != [INVALID_URL]


def test_blank_source_url_is_allowed(client: TestClient, staff: dict[str, str]) -> None:
    for value in ("", "   "):
        created, put, patch = _writes(client, staff, "source_url", value)
        assert (created.status_code, put.status_code, patch.status_code) == (201, 200, 200)
        assert created.json()["source_url"] == ""


def test_metadata_may_not_be_null(client: TestClient, staff: dict[str, str]) -> None:
    for response in _writes(client, staff, "metadata", None):
        assert response.status_code == 400
        assert response.json() == {"metadata": [NOT_NULL]}
    absent = client.post(CATALOGS, json={"name": "Absent", "version": "1"}, headers=staff)
    assert absent.status_code == 201 and absent.json()["metadata"] == {}
    created, put, patch = _writes(client, staff, "metadata", {"api": "x"})
    assert (created.status_code, put.status_code, patch.status_code) == (201, 200, 200)
    assert patch.json()["metadata"] == {"api": "x"}
