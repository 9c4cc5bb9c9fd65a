"""/api/marketplace-software-catalogs/: list, filters, orderings, pagination, CRUD, auth."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from syncd.db.tables import Catalog, Package, Target, Version
from syncd.readmodel import refresh_read_model
from tests.integration.api.conftest import CATALOGS, Sample, names
from tests.support.derived import assert_no_orphans, derived_packages

HEX = re.compile(r"^[0-9a-f]{32}$")

CATALOG_FIELDS = {
    "url",
    "uuid",
    "created",
    "modified",
    "name",
    "version",
    "catalog_type",
    "catalog_type_display",
    "source_url",
    "description",
    "metadata",
    "auto_update_enabled",
    "last_update_attempt",
    "last_successful_update",
    "update_errors",
    "package_count",
    "version_count",
    "target_count",
    "supports_cpu_target_restrictions",
}


def test_list_is_a_bare_array_with_every_reference_field(
    client: TestClient, sample: Sample
) -> None:
    response = client.get(CATALOGS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["X-Result-Count"] == "2"
    # Waldur's LinkHeaderPagination: a single page still has first and last, both page-less.
    url = f"http://testserver{CATALOGS}"
    assert response.headers["Link"] == f'<{url}>; rel="first", <{url}>; rel="last"'
    body = response.json()
    assert isinstance(body, list)
    eessi = body[0]
    assert set(eessi) == CATALOG_FIELDS
    assert HEX.match(eessi["uuid"]) and eessi["uuid"] == sample.eessi.hex
    assert eessi["url"] == f"http://testserver{CATALOGS}{sample.eessi.hex}/"
    assert eessi["catalog_type_display"] == "Binary Runtime (EESSI)"
    assert eessi["created"] == "2026-01-01T00:00:00Z"
    assert eessi["last_update_attempt"] is None
    assert eessi["last_successful_update"] == "2026-01-04T00:00:00Z"
    assert (eessi["package_count"], eessi["version_count"], eessi["target_count"]) == (3, 4, 5)
    assert body[1]["catalog_type_display"] == "Source Package (Spack)"


def test_url_uses_public_url_when_set(client: TestClient, sample: Sample, app: Any) -> None:
    app.state.ctx.settings = app.state.ctx.settings.__class__(
        database_url=app.state.ctx.settings.database_url, public_url="https://syncd.example/"
    )
    item = client.get(CATALOGS).json()[0]
    assert item["url"] == f"https://syncd.example{CATALOGS}{sample.eessi.hex}/"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name=ees", ["EESSI"]),
        ("name=SPACK", ["Spack"]),
        ("version=2023", ["EESSI"]),
        ("description=scientific", ["EESSI"]),
        ("catalog_type=source_package", ["Spack"]),
        ("catalog_type=package_manager", []),
        ("auto_update_enabled=true", ["EESSI"]),
        ("auto_update_enabled=false", ["Spack"]),
        ("name=%25", []),  # a literal %, not a wildcard
    ],
)
def test_filters(client: TestClient, sample: Sample, query: str, expected: list[str]) -> None:
    response = client.get(f"{CATALOGS}?{query}")
    assert names(response) == expected
    assert response.headers["X-Result-Count"] == str(len(expected))


def test_unknown_catalog_type_is_a_400(client: TestClient, sample: Sample) -> None:
    response = client.get(f"{CATALOGS}?catalog_type=rpm")
    assert response.status_code == 400
    assert list(response.json()) == ["catalog_type"]


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("", ["EESSI", "Spack"]),
        ("o=-name", ["Spack", "EESSI"]),
        ("o=version", ["EESSI", "Spack"]),
        ("o=-version", ["Spack", "EESSI"]),
        ("o=-catalog_type", ["Spack", "EESSI"]),
        ("o=-created", ["Spack", "EESSI"]),
        ("o=modified", ["Spack", "EESSI"]),
        ("o=catalog_type,-name", ["EESSI", "Spack"]),
        ("o=-catalog_type,name", ["Spack", "EESSI"]),
        # Repeated keys: the last counts, as django-filter reads one value.
        ("o=name&o=-name", ["Spack", "EESSI"]),
    ],
)
def test_orderings(client: TestClient, sample: Sample, ordering: str, expected: list[str]) -> None:
    assert names(client.get(f"{CATALOGS}?{ordering}")) == expected


def test_unknown_ordering_is_a_400(client: TestClient, sample: Sample) -> None:
    response = client.get(f"{CATALOGS}?o=name,-size")
    assert response.status_code == 400
    assert response.json() == {
        "o": ["Select a valid choice. -size is not one of the available choices."]
    }


def test_pagination_headers_and_links(client: TestClient, sample: Sample) -> None:
    first = client.get(f"{CATALOGS}?page_size=1&name=s")
    assert names(first) == ["EESSI"]
    assert first.headers["X-Result-Count"] == "2"
    links = dict(
        (rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', first.headers["Link"])
    )
    assert re.findall(r'rel="(\w+)"', first.headers["Link"]) == ["first", "next", "last"]
    assert links["first"] == f"http://testserver{CATALOGS}?page_size=1&name=s"
    assert links["next"] == f"http://testserver{CATALOGS}?page_size=1&name=s&page=2"
    assert links["last"] == links["next"]
    second = client.get(links["next"])
    assert names(second) == ["Spack"]
    assert re.findall(r'rel="(\w+)"', second.headers["Link"]) == ["first", "prev", "last"]
    second_links = {
        rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', second.headers["Link"])
    }
    # DRF writes the link to page 1 without a page parameter.
    assert second_links["prev"] == second_links["first"] == links["first"]


def test_link_header_of_a_middle_page(client: TestClient, session_factory: Any) -> None:
    with session_factory() as session:
        session.add_all(
            Catalog(name=f"m{i}", version="1", catalog_type="source_package") for i in range(5)
        )
        session.commit()
    middle = client.get(f"{CATALOGS}?page_size=2&page=2&o=name")
    base = f"http://testserver{CATALOGS}?page_size=2&o=name"
    assert middle.headers["Link"] == (
        f'<{base}>; rel="first", <{base}>; rel="prev", '
        f'<{base}&page=3>; rel="next", <{base}&page=3>; rel="last"'
    )
    third = client.get(f"{CATALOGS}?page_size=2&page=3&o=name")
    assert third.headers["Link"] == (
        f'<{base}>; rel="first", <{base}&page=2>; rel="prev", <{base}&page=3>; rel="last"'
    )


def test_default_and_max_page_size(client: TestClient, session_factory: Any) -> None:
    with session_factory() as session:
        session.add_all(
            Catalog(name=f"c{i:03}", version="1", catalog_type="source_package") for i in range(305)
        )
        session.commit()
    assert len(client.get(CATALOGS).json()) == 10
    assert len(client.get(f"{CATALOGS}?page_size=0").json()) == 10
    assert len(client.get(f"{CATALOGS}?page_size=1000").json()) == 300
    last = client.get(f"{CATALOGS}?page_size=300&page=2")
    assert len(last.json()) == 5
    assert last.headers["X-Result-Count"] == "305"


@pytest.mark.parametrize("page", ["3", "0", "-1", "abc"])
def test_page_past_the_end_is_404_invalid_page(
    client: TestClient, sample: Sample, page: str
) -> None:
    response = client.get(f"{CATALOGS}?page_size=1&page={page}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


def test_empty_list_first_page_is_fine(client: TestClient) -> None:
    response = client.get(CATALOGS)
    assert response.status_code == 200 and response.json() == []
    assert response.headers["X-Result-Count"] == "0"


def test_head_answers_headers_only(client: TestClient, sample: Sample) -> None:
    response = client.head(f"{CATALOGS}?name=EESSI")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["X-Result-Count"] == "1"


def test_field_selection(client: TestClient, sample: Sample) -> None:
    body = client.get(f"{CATALOGS}?field=name&field=uuid&field=nonsense").json()
    assert body == [
        {"uuid": sample.eessi.hex, "name": "EESSI"},
        {"uuid": sample.spack.hex, "name": "Spack"},
    ]
    one = client.get(f"{CATALOGS}{sample.eessi.hex}/?field=version").json()
    assert one == {"version": "2023.06"}
    # Only unknown names: an empty object per item, as Waldur answers.
    assert client.get(f"{CATALOGS}?field=nonsense").json() == [{}, {}]
    assert client.get(f"{CATALOGS}{sample.eessi.hex}/?field=nonsense").json() == {}


@pytest.mark.parametrize("form", ["hex", "hyphens"])
def test_retrieve_accepts_both_uuid_forms(client: TestClient, sample: Sample, form: str) -> None:
    text = sample.eessi.hex if form == "hex" else str(sample.eessi)
    response = client.get(f"{CATALOGS}{text}/")
    assert response.status_code == 200
    assert response.json()["uuid"] == sample.eessi.hex


@pytest.mark.parametrize("text", [uuid.uuid4().hex, "not-a-uuid"])
def test_retrieve_unknown_is_404(client: TestClient, sample: Sample, text: str) -> None:
    response = client.get(f"{CATALOGS}{text}/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- auth --------------------------------------------------------------------------------


def test_reads_are_anonymous_by_default(client: TestClient, sample: Sample) -> None:
    assert client.get(CATALOGS).status_code == 200


def test_invalid_token_is_401_even_on_a_read(client: TestClient, sample: Sample) -> None:
    response = client.get(CATALOGS, headers={"Authorization": "Token nope"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert response.headers["WWW-Authenticate"] == "Token"
    empty = client.get(CATALOGS, headers={"Authorization": "Token"})
    assert empty.status_code == 401 and "detail" in empty.json()


def test_other_auth_schemes_are_anonymous(client: TestClient, sample: Sample) -> None:
    assert client.get(CATALOGS, headers={"Authorization": "Bearer x"}).status_code == 200


def test_anonymous_read_can_be_disabled(
    client: TestClient, sample: Sample, app: Any, user: dict[str, str]
) -> None:
    settings = app.state.ctx.settings
    app.state.ctx.settings = settings.__class__(
        database_url=settings.database_url, anonymous_read=False
    )
    response = client.get(CATALOGS)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert client.get(CATALOGS, headers=user).status_code == 200


def test_writes_need_a_token_then_staff(
    client: TestClient, sample: Sample, user: dict[str, str]
) -> None:
    body = {"name": "X", "version": "1"}
    anonymous = client.post(CATALOGS, json=body)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Authentication credentials were not provided."}
    forbidden = client.post(CATALOGS, json=body, headers=user)
    assert forbidden.status_code == 403
    assert forbidden.json() == {"detail": "You do not have permission to perform this action."}
    for method in ("put", "patch", "delete"):
        url = f"{CATALOGS}{sample.eessi.hex}/"
        kwargs: dict[str, Any] = {"headers": user}
        if method != "delete":
            kwargs["json"] = body
        assert getattr(client, method)(url, **kwargs).status_code == 403
    assert client.get(f"{CATALOGS}discover/", headers=user).status_code == 403


# --- create / update / delete ---------------------------------------------------------------


def test_create_returns_201_with_the_object(client: TestClient, staff: dict[str, str]) -> None:
    response = client.post(
        CATALOGS,
        json={
            "name": "Local",
            "version": "1.0",
            "catalog_type": "package_manager",
            "metadata": {"a": 1},
            "auto_update_enabled": False,
            "unknown_field": "ignored",
        },
        headers=staff,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == CATALOG_FIELDS
    assert body["catalog_type_display"] == "Package Manager (conda, pip)"
    assert body["metadata"] == {"a": 1}
    assert body["auto_update_enabled"] is False
    assert (body["package_count"], body["source_url"], body["update_errors"]) == (0, "", "")
    assert client.get(f"{CATALOGS}{body['uuid']}/").json() == body


def test_create_defaults(client: TestClient, staff: dict[str, str]) -> None:
    body = client.post(CATALOGS, json={"name": "X", "version": "1"}, headers=staff).json()
    assert body["catalog_type"] == "binary_runtime"
    assert body["auto_update_enabled"] is True
    assert body["metadata"] == {}


def test_create_duplicate_is_a_non_field_error(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    response = client.post(
        CATALOGS,
        json={"name": "EESSI", "version": "2023.06", "catalog_type": "binary_runtime"},
        headers=staff,
    )
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["The fields name, version, catalog_type must make a unique set."]
    }
    other_type = client.post(
        CATALOGS,
        json={"name": "EESSI", "version": "2023.06", "catalog_type": "source_package"},
        headers=staff,
    )
    assert other_type.status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"version": "1"}, "name", "This field is required."),
        ({"name": "", "version": "1"}, "name", "This field may not be blank."),
        ({"name": None, "version": "1"}, "name", "This field may not be null."),
        (
            {"name": "x" * 101, "version": "1"},
            "name",
            "Ensure this field has no more than 100 characters.",
        ),
        (
            {"name": "X", "version": "1", "catalog_type": "rpm"},
            "catalog_type",
            '"rpm" is not a valid choice.',
        ),
        (
            {"name": "X", "version": "1", "auto_update_enabled": "maybe"},
            "auto_update_enabled",
            "Must be a valid boolean.",
        ),
    ],
)
def test_create_validation_errors_are_drf_400s(
    client: TestClient, staff: dict[str, str], body: dict[str, Any], field: str, message: str
) -> None:
    response = client.post(CATALOGS, json=body, headers=staff)
    assert response.status_code == 400
    assert response.json() == {field: [message]}


def test_malformed_bodies(client: TestClient, staff: dict[str, str]) -> None:
    not_json = client.post(
        CATALOGS, content=b"{nope", headers={**staff, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["detail"].startswith("JSON parse error")
    a_list = client.post(CATALOGS, json=[1, 2], headers=staff)
    assert a_list.status_code == 400
    assert a_list.json() == {
        "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
    }


def test_source_url_is_checked(client: TestClient, staff: dict[str, str]) -> None:
    for url in ("ftp://mirror.example/x", "file:///etc/passwd", "http://127.0.0.1/data"):
        response = client.post(
            CATALOGS, json={"name": "X", "version": "1", "source_url": url}, headers=staff
        )
        assert response.status_code == 400, url
        assert list(response.json()) == ["source_url"]
        assert "refused" in response.json()["source_url"][0]


def test_put_replaces_and_patch_changes_only_what_is_sent(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    url = f"{CATALOGS}{sample.eessi}/"
    put = client.put(url, json={"name": "EESSI", "version": "2023.06.1"}, headers=staff)
    assert put.status_code == 200, put.text
    assert put.json()["version"] == "2023.06.1"
    assert put.json()["description"].startswith("European")  # not sent, so unchanged
    missing = client.put(url, json={"name": "EESSI"}, headers=staff)
    assert missing.status_code == 400 and missing.json() == {"version": ["This field is required."]}
    patch = client.patch(url, json={"auto_update_enabled": False}, headers=staff)
    assert patch.status_code == 200
    assert patch.json()["auto_update_enabled"] is False
    assert patch.json()["version"] == "2023.06.1"
    empty = client.patch(url, json={}, headers=staff)
    assert empty.status_code == 200 and empty.json()["name"] == "EESSI"
    no_body = client.patch(url, headers=staff)
    assert no_body.status_code == 200
    null = client.patch(url, json={"name": None}, headers=staff)
    assert null.status_code == 400 and null.json() == {"name": ["This field may not be null."]}


def test_update_into_a_duplicate_is_a_400(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    response = client.patch(
        f"{CATALOGS}{sample.spack.hex}/",
        json={"name": "EESSI", "version": "2023.06", "catalog_type": "binary_runtime"},
        headers=staff,
    )
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_write_to_unknown_catalog_is_404(client: TestClient, staff: dict[str, str]) -> None:
    url = f"{CATALOGS}{uuid.uuid4().hex}/"
    assert client.patch(url, json={}, headers=staff).status_code == 404
    assert client.delete(url, headers=staff).status_code == 404


def _package_id(session_factory: sessionmaker[Session], package: uuid.UUID) -> int:
    with session_factory() as session:
        return session.execute(select(Package.id).where(Package.uuid == package)).scalar_one()


def test_delete_cascades(
    client: TestClient,
    sample: Sample,
    staff: dict[str, str],
    session_factory: sessionmaker[Session],
    engine: Engine,
) -> None:
    with session_factory() as session:  # every kind of derived row, as a sync leaves them
        for catalog_id in session.execute(select(Catalog.id)).scalars():
            refresh_read_model(session.connection(), catalog_id, None)
        session.commit()
    response = client.delete(f"{CATALOGS}{sample.eessi}/", headers=staff)
    assert response.status_code == 204 and response.content == b""
    spack_gromacs = {_package_id(session_factory, sample.packages["gromacs"])}
    # Spack's gromacs has no CPU target nor toolchain: no facet.
    assert derived_packages(engine) == {
        "package_read_model": spack_gromacs,
        "package_facet": set(),
        "package_search": spack_gromacs,
    }
    assert_no_orphans(engine)
    with session_factory() as session:
        eessi_left = session.execute(
            select(func.count()).select_from(Catalog).where(Catalog.uuid == sample.eessi)
        ).scalar_one()
        counts = [
            session.execute(select(func.count()).select_from(model)).scalar_one()
            for model in (Package, Version, Target)
        ]
    assert eessi_left == 0
    assert counts == [1, 2, 1]  # only Spack's gromacs, its two versions, one target


def _cpu(family: str, micro: str) -> dict[str, str]:
    return {"cpu_family": family, "cpu_microarchitecture": micro, "full_arch": f"{family}/{micro}"}


def test_cpu_targets(client: TestClient, sample: Sample) -> None:
    response = client.get(f"{CATALOGS}{sample.eessi.hex}/cpu_targets/")
    assert response.status_code == 200
    assert response.json() == [
        _cpu("aarch64", "neoverse_v1"),
        _cpu("x86_64", "amd/zen2"),  # sorted by full_arch, as Waldur's
        _cpu("x86_64", "generic"),
        _cpu("x86_64", "intel/haswell"),
    ]
    assert client.get(f"{CATALOGS}{sample.spack.hex}/cpu_targets/").json() == []
    assert client.get(f"{CATALOGS}{uuid.uuid4()}/cpu_targets/").status_code == 404


def test_cpu_targets_of_a_flat_map(client: TestClient, staff: dict[str, str]) -> None:
    """Waldur reads only the map entry keyed by the catalog's version: a flat map gives []."""
    created = client.post(
        CATALOGS,
        json={
            "name": "EESSI",
            "version": "2025.06",
            "metadata": {"architectures_map": {"x86_64/amd/zen4": "x86_64/amd/zen4"}},
        },
        headers=staff,
    ).json()
    targets = client.get(f"{CATALOGS}{created['uuid']}/cpu_targets/").json()
    assert targets == []
    keyed = {"2025.06": {"x86_64/amd/zen4": "x86_64/amd/zen4"}}
    client.patch(
        f"{CATALOGS}{created['uuid']}/",
        json={"metadata": {"architectures_map": keyed}},
        headers=staff,
    )
    targets = client.get(f"{CATALOGS}{created['uuid']}/cpu_targets/").json()
    assert targets == [_cpu("x86_64", "amd/zen4")]
