"""Catalog names that look alike are one name: trimmed as DRF trims, NFKC-normalised, without
invisible or bidirectional formatting characters, compared case-insensitively, on every way
in (create, PUT, PATCH, import_catalog) and in the database itself (migration 0009)."""

from __future__ import annotations

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from syncd.db.tables import Catalog
from tests.integration.api.conftest import CATALOGS
from tests.integration.api.test_commands import IMPORT, queued

UNIQUE = {"non_field_errors": ["The fields name, version, catalog_type must make a unique set."]}
VERSION = "2023.06"

# The reproduction's lookalikes of `EESSI` that are the same name (a Cyrillic U+0415 is a letter
# of its own script and stays a name of its own: syncd.names).
SAME_NAME = [
    pytest.param("eessi", id="lower case"),
    pytest.param("EESSI ", id="trailing space"),
    pytest.param("\u00a0 EESSI\t", id="surrounding blanks"),
    pytest.param("\uff25\uff25\uff33\uff33\uff29", id="fullwidth"),
    pytest.param("EeSsI", id="mixed case"),
]
FORMATTING = [
    pytest.param("EESSI\u200b", "U+200B", id="zero-width space"),
    pytest.param("EESSI\u202e", "U+202E", id="right-to-left override"),
    pytest.param("EE\u2066SSI\u2069", "U+2066, U+2069", id="bidi isolates"),
    pytest.param("\ufeffEESSI", "U+FEFF", id="byte order mark"),
    pytest.param("EES\u00adSI", "U+00AD", id="soft hyphen"),
]


def _create(client: TestClient, headers: dict[str, str], name: str, **fields: str) -> object:
    body = {"name": name, "version": VERSION, "catalog_type": "binary_runtime", **fields}
    return client.post(CATALOGS, json=body, headers=headers)


def _names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Catalog.name).order_by(Catalog.id)).scalars())


@pytest.mark.parametrize("lookalike", SAME_NAME)
def test_a_lookalike_of_an_existing_name_is_a_duplicate(
    client: TestClient, staff: dict[str, str], engine: Engine, lookalike: str
) -> None:
    first = client.post(CATALOGS, json={"name": "EESSI", "version": VERSION}, headers=staff)
    assert first.status_code == 201, first.text
    again = client.post(CATALOGS, json={"name": lookalike, "version": VERSION}, headers=staff)
    assert again.status_code == 400, again.text
    assert again.json() == UNIQUE
    # Another version or type of the same name is another catalog, as before.
    other = client.post(CATALOGS, json={"name": lookalike, "version": "2025.06"}, headers=staff)
    assert other.status_code == 201, other.text
    assert _names(engine) == ["EESSI", other.json()["name"]]


def test_names_are_stored_trimmed_and_normalised(client: TestClient, staff: dict[str, str]) -> None:
    spaced = client.post(CATALOGS, json={"name": "  EESSI ", "version": VERSION}, headers=staff)
    assert spaced.status_code == 201, spaced.text
    assert spaced.json()["name"] == "EESSI"
    wide = client.post(
        CATALOGS, json={"name": "\uff33\uff50\uff41\uff43\uff4b", "version": "1"}, headers=staff
    )
    assert wide.status_code == 201, wide.text
    assert wide.json()["name"] == "Spack"
    # NFKC before the length check: U+FDFA is one character that normalises to 18.
    long_one = client.post(
        CATALOGS, json={"name": "x" * 90 + "\ufdfa", "version": "1"}, headers=staff
    )
    assert long_one.status_code == 400
    assert long_one.json() == {"name": ["Ensure this field has no more than 100 characters."]}


@pytest.mark.parametrize(("name", "found"), FORMATTING)
def test_formatting_characters_are_refused_everywhere(
    client: TestClient, staff: dict[str, str], broker: StubBroker, name: str, found: str
) -> None:
    expected = {
        "name": [
            f"Invisible or bidirectional formatting characters are not allowed (found {found})."
        ]
    }
    created = _create(client, staff, name)
    assert created.status_code == 400 and created.json() == expected  # type: ignore[attr-defined]
    ok = _create(client, staff, "EESSI")
    url = f"{CATALOGS}{ok.json()['uuid']}/"  # type: ignore[attr-defined]
    put = client.put(url, json={"name": name, "version": VERSION}, headers=staff)
    assert put.status_code == 400 and put.json() == expected
    patch = client.patch(url, json={"name": name}, headers=staff)
    assert patch.status_code == 400 and patch.json() == expected
    imported = client.post(IMPORT, json={"name": name, "version": "2025.06"}, headers=staff)
    assert imported.status_code == 400 and imported.json() == expected
    assert client.get(url).json()["name"] == "EESSI"
    assert queued(broker) == []


def test_whitespace_only_name_is_blank(client: TestClient, staff: dict[str, str]) -> None:
    for name in ("   ", "\u3000", "\u00a0\t"):
        response = client.post(CATALOGS, json={"name": name, "version": "1"}, headers=staff)
        assert response.status_code == 400
        assert response.json() == {"name": ["This field may not be blank."]}


def test_renaming_into_a_lookalike_is_a_duplicate(
    client: TestClient, staff: dict[str, str]
) -> None:
    _create(client, staff, "EESSI")
    other = _create(client, staff, "Other")
    url = f"{CATALOGS}{other.json()['uuid']}/"  # type: ignore[attr-defined]
    for body in ({"name": "eessi"}, {"name": " EESSI "}):
        patch = client.patch(url, json=body, headers=staff)
        assert patch.status_code == 400 and patch.json() == UNIQUE
    put = client.put(url, json={"name": "Eessi", "version": VERSION}, headers=staff)
    assert put.status_code == 400 and put.json() == UNIQUE
    # A catalog may change the case of its own name.
    same = client.patch(url, json={"name": "OTHER"}, headers=staff)
    assert same.status_code == 200 and same.json()["name"] == "OTHER"


def test_import_catalog_names_are_normalised(
    client: TestClient, staff: dict[str, str], broker: StubBroker
) -> None:
    # The adapter's own spelling goes on the queue, whatever lookalike the body used.
    for name in ("\uff25\uff25\uff33\uff33\uff29", " eessi "):
        response = client.post(IMPORT, json={"name": name, "version": "2025.06"}, headers=staff)
        assert response.status_code == 202, response.text
        assert response.json()["name"] == "EESSI"
    assert [m["name"] for m in queued(broker)] == ["EESSI", "EESSI"]
    # An existing catalog is found by any lookalike of its name.
    _create(client, staff, "EESSI")
    refused = client.post(IMPORT, json={"name": "eessi"}, headers=staff)
    assert refused.status_code == 400
    assert refused.json() == ["A catalog with name=EESSI and type=binary_runtime already exists."]


def test_the_database_refuses_names_differing_only_in_case(engine: Engine) -> None:
    """The unique index on lower(name): a writer that bypasses the API cannot make them."""
    row = {"version": VERSION, "catalog_type": "binary_runtime", "metadata_": {}}
    with engine.begin() as conn:
        conn.execute(insert(Catalog).values(name="EESSI", **row))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(Catalog).values(name="eessi", **row))
    with engine.begin() as conn:  # another version is another catalog
        conn.execute(insert(Catalog).values(name="eessi", **{**row, "version": "2025.06"}))
    assert sorted(_names(engine)) == ["EESSI", "eessi"]
