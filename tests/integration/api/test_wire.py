"""Cross-cutting wire behaviour: body limits, DRF error shapes of the framework's own errors,
the OpenAPI document and the interactive docs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from syncd.api.app import create_app
from syncd.api.limits import MAX_JSON_DEPTH, nested_deeper_than
from syncd.config import Settings
from tests.integration.api.conftest import CATALOGS, PACKAGES, TARGETS, VERSIONS, Sample


def test_body_over_the_limit_is_413(client: TestClient, staff: dict[str, str], app: object) -> None:
    limit = client.app.state.ctx.settings.max_body_bytes  # type: ignore[attr-defined]
    big = b'{"name": "x", "version": "1", "description": "' + b"a" * limit + b'"}'
    response = client.post(
        CATALOGS, content=big, headers={**staff, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_chunked_body_over_the_limit_is_413(client: TestClient, staff: dict[str, str]) -> None:
    limit = client.app.state.ctx.settings.max_body_bytes  # type: ignore[attr-defined]

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "x", "description": "'
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    response = client.post(
        CATALOGS, content=chunks(), headers={**staff, "Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_deeply_nested_json_is_refused(client: TestClient, staff: dict[str, str]) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    body = '{"name": "x", "version": "1", "metadata": ' + deep + "}"
    response = client.post(
        CATALOGS, content=body, headers={**staff, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "nested deeper" in response.json()["detail"]
    shallow = {"name": "x", "version": "1", "metadata": {"a": [[[["ok"]]]]}}
    assert client.post(CATALOGS, json=shallow, headers=staff).status_code == 201


def _nested(depth: int, inner: str = "1") -> str:
    return (
        '{"a":' * (depth // 2)
        + "[" * (depth - depth // 2)
        + inner
        + "]" * (depth - depth // 2)
        + "}" * (depth // 2)
    )


def test_json_depth_is_exact_for_valid_json() -> None:
    """The native check agrees with a walk of the parsed document, strings and escapes
    included, at the limit and one past it, in every encoding json.loads reads."""
    limit = MAX_JSON_DEPTH
    for depth in (limit - 1, limit, limit + 1, 5 * limit):
        for inner in ("1", '"[[[{{{"', '"\\\\"', '"\\"[[[["', '["x", {"b": "]]]}}}"}]'):
            text = _nested(depth, inner)
            json.loads(text)  # valid
            deepest = depth + (2 if inner.startswith("[") else 0)
            for encoding in ("utf-8", "utf-16", "utf-32-le"):
                assert nested_deeper_than(text.encode(encoding)) == (deepest > limit), (
                    depth,
                    inner,
                    encoding,
                )
    wide = "[" + ",".join(_nested(limit) for _ in range(2_000)) + "]"
    assert nested_deeper_than(wide.encode()) is True  # one level more than each member
    assert nested_deeper_than(("[" + ",".join(["[]"] * 50_000) + "]").encode()) is False


def test_json_depth_of_invalid_json_bounds_the_parser() -> None:
    """Openers never closed count as nesting (the parser recurses into them before it
    fails); brackets inside strings never do."""
    assert nested_deeper_than(b"{" * 33 + b" " * 1_000) is True
    assert nested_deeper_than(b"{" * 32 + b" " * 1_000) is False
    assert nested_deeper_than(b'{"a": "' + b"[" * 100 + b'"}') is False
    assert nested_deeper_than(b'["\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]') is False
    assert nested_deeper_than(b"]" * 100 + b"[" * 100) is True
    # Read as json.loads reads it: after a UTF-16 BOM, "[[" is one character, no bracket;
    # an odd length does not decode at all (the parser fails before any nesting).
    assert nested_deeper_than(b"\xff\xfe" + b"[" * 100) is False
    assert nested_deeper_than(b"\xff\xfe" + b"[" * 101) is False
    assert nested_deeper_than(b"\xff\xfe" + "[".encode("utf-16-le") * 33) is True


def test_unknown_path_and_method(client: TestClient, sample: Sample) -> None:
    missing = client.get("/api/nothing-here/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}
    wrong = client.put(PACKAGES, json={})
    assert wrong.status_code == 405
    assert wrong.json() == {"detail": 'Method "PUT" not allowed.'}
    assert wrong.headers["Allow"] == "GET, POST, HEAD, OPTIONS"


@pytest.mark.parametrize("url", [CATALOGS, PACKAGES, VERSIONS, TARGETS])
def test_head_on_every_list(client: TestClient, sample: Sample, url: str) -> None:
    response = client.head(url)
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["X-Result-Count"]) > 0


def test_head_wherever_get_answers(client: TestClient, sample: Sample) -> None:
    """As DRF: HEAD on an object or a small list answers what GET would, without the body."""
    package = client.get(PACKAGES).json()[0]
    version = client.get(VERSIONS).json()[0]
    target = client.get(TARGETS).json()[0]
    urls = [
        f"{CATALOGS}{sample.eessi.hex}/",
        f"{CATALOGS}{sample.eessi.hex}/cpu_targets/",
        f"{PACKAGES}{package['uuid']}/",
        f"{VERSIONS}{version['uuid']}/",
        f"{TARGETS}{target['uuid']}/",
    ]
    for url in urls:
        get, head = client.get(url), client.head(url)
        assert (head.status_code, head.content) == (200, b""), url
        assert head.headers["content-type"] == get.headers["content-type"], url
    missing = client.head(f"{CATALOGS}{'0' * 32}/")
    assert (missing.status_code, missing.content) == (404, b"")


@pytest.mark.parametrize("url", [CATALOGS, PACKAGES, VERSIONS, TARGETS])
def test_a_page_size_that_is_not_a_number_is_the_default(
    client: TestClient, sample: Sample, url: str
) -> None:
    """As DRF's pager: not an error, the default page size."""
    plain = client.get(url)
    for value in ("abc", "", "1.5"):
        lenient = client.get(url, params={"page_size": value})
        assert lenient.status_code == 200, (value, lenient.text)
        assert lenient.json() == plain.json()
        assert lenient.headers["X-Result-Count"] == plain.headers["X-Result-Count"]


def test_openapi_document_and_docs(client: TestClient) -> None:
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    document = schema.json()
    paths = document["paths"]
    for path in (CATALOGS, PACKAGES, VERSIONS, TARGETS):
        assert {"get", "head"} <= set(paths[path])
    assert set(paths[CATALOGS]) == {"get", "head", "post"}
    assert set(paths[f"{CATALOGS}{{uuid}}/"]) == {"get", "put", "patch", "delete"}
    for operations in paths.values():
        for operation in operations.values():
            assert "422" not in operation["responses"]
    operation_ids = {op["operationId"] for ops in paths.values() for op in ops.values()}
    assert {
        "marketplace_software_catalogs_list",
        "marketplace_software_catalogs_import_catalog",
        "marketplace_software_catalogs_update_catalog",
        "marketplace_software_catalogs_discover_list",
        "marketplace_software_catalogs_cpu_targets_list",
        "marketplace_software_packages_list",
    } <= operation_ids
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and "/api/schema/" in docs.text


def test_null_characters_are_a_400_not_a_database_error(
    client: TestClient, sample: Sample, staff: dict[str, str]
) -> None:
    for url in (f"{CATALOGS}?name=a%00b", f"{PACKAGES}?category=a%00b", f"{TARGETS}?path=%00"):
        response = client.get(url)
        assert response.status_code == 400, url
    body = client.post(CATALOGS, json={"name": "a\u0000b", "version": "1"}, headers=staff)
    assert body.status_code == 400
    assert body.json() == {"name": ["Null characters are not allowed."]}
    nested = client.post(
        CATALOGS, json={"name": "a", "version": "1", "metadata": {"k": ["\u0000"]}}, headers=staff
    )
    assert nested.status_code == 400 and list(nested.json()) == ["metadata"]


def test_create_app_builds_what_it_is_not_given(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url))
    ctx = app.state.ctx  # type: ignore[attr-defined]
    assert {"EESSI", "Spack"} <= set(ctx.adapters)
    with TestClient(app) as client:
        assert client.get(CATALOGS).status_code == 200
        assert client.get("/health").status_code == 200


def test_a_token_checked_while_the_database_is_down_is_a_503() -> None:
    """The body limit checks a write's token before reading its body; a database that
    refuses connections then gets the app's own answer (503), not Starlette's bare 500."""
    down = "postgresql+psycopg://postgres@127.0.0.1:1/syncd_down"
    app = create_app(Settings(database_url=down), broker=object(), adapters={}, fetcher=object())
    with TestClient(app, raise_server_exceptions=False) as client:
        write = client.post(CATALOGS, json={"name": "x"}, headers={"Authorization": "Token k"})
    assert write.status_code == 503, write.text
    assert write.headers["Retry-After"] and "unavailable" in write.json()["detail"]
