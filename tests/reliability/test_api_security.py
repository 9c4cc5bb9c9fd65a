"""API security: tokens, body limits, deep JSON, and where source_url may point.

The API runs as a real `syncd api` process (uvicorn), because body limits and malformed
requests are only meaningful at the HTTP server, not through an in-process test client.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from syncd.config import load_settings
from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.db.migrate import upgrade
from syncd.tokens import create_token, revoke_token
from tests.reliability.harness import ApiServer, syncd_env
from tests.reliability.results import CaseRecord
from tests.support.services import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

CATALOGS = "/api/marketplace-software-catalogs/"
MAX_BODY = 100_000


@dataclass
class Tokens:
    staff: str
    reader: str
    revoked: str


@dataclass
class Api:
    url: str
    db_url: str
    tokens: Tokens
    server: ApiServer

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Token {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _make_tokens(db_url: str) -> Tokens:
    engine = make_engine(db_url)
    try:
        factory = make_session_factory(engine)
        with session_scope(factory) as session:
            _, staff = create_token(session, name="rel-staff", is_staff=True)
            _, reader = create_token(session, name="rel-reader", is_staff=False)
            revoked_id, revoked = create_token(session, name="rel-revoked", is_staff=True)
        with session_scope(factory) as session:
            assert revoke_token(session, revoked_id)
    finally:
        engine.dispose()
    return Tokens(staff=staff, reader=reader, revoked=revoked)


@pytest.fixture(scope="module")
def api(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    logs = tmp_path_factory.mktemp("api_security")
    with postgres_database("syncd_rel_sec") as db_url:
        upgrade(db_url)
        tokens = _make_tokens(db_url)
        env = syncd_env(
            database_url=db_url,
            broker_url=amqp_url,
            queue_name="syncd_rel_sec",
            max_body_bytes=MAX_BODY,
        )
        server = ApiServer(env, logs / "api.log").start()
        try:
            yield Api(server.base_url, db_url, tokens, server)
        finally:
            server.stop()


def _catalog_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "RelSec",
        "version": f"v{time.monotonic_ns()}",
        "catalog_type": "source_package",
        "source_url": "https://example.org/data.json",
        "description": "reliability suite",
    }
    body.update(overrides)
    return body


def _assert_alive(api: Api) -> None:
    assert api.server.process.alive(), f"the API died:\n{api.server.process.tail()}"
    assert httpx.get(api.url + CATALOGS, timeout=10).status_code == 200


# --- tokens ------------------------------------------------------------------------------


def test_tokens_wrong_absent_revoked_non_staff(
    api: Api, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_auth")
    with api.client(api.tokens.staff) as staff:
        created = staff.post(CATALOGS, json=_catalog_body())
        assert created.status_code == 201, created.text
        uuid = created.json()["uuid"]
    item = f"{CATALOGS}{uuid}/"
    writes: list[tuple[str, str, dict[str, object] | None]] = [
        ("POST", CATALOGS, _catalog_body()),
        ("PUT", item, _catalog_body()),
        ("PATCH", item, {"description": "changed"}),
        ("DELETE", item, None),
        ("POST", f"{item}update_catalog/", None),
        ("POST", f"{CATALOGS}import_catalog/", {"name": "Spack"}),
        ("GET", f"{CATALOGS}discover/", None),
    ]
    reads = [CATALOGS, item, "/api/marketplace-software-packages/"]
    bad_headers = {
        "wrong token": "Token " + "0" * 40,
        "revoked token": f"Token {api.tokens.revoked}",
        "token keyword, no key": "Token",
        "key with a space": "Token abc def",
        "10 kB key": "Token " + "a" * 10_000,
        "non-ASCII key": "Token caf\u00e9",
    }
    checked = 0
    with httpx.Client(base_url=api.url, timeout=30) as http:
        for method, path, body in writes:
            # No credentials at all, or another scheme (DRF treats it as anonymous): 401.
            for headers in ({}, {"Authorization": "Bearer " + api.tokens.staff}):
                r = http.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
                assert "detail" in r.json()
                checked += 1
            for label, value in bad_headers.items():
                r = http.request(
                    method, path, json=body, headers=[(b"Authorization", value.encode("utf-8"))]
                )
                assert r.status_code == 401, (method, path, label, r.status_code, r.text)
                checked += 1
            r = http.request(
                method, path, json=body, headers={"Authorization": f"Token {api.tokens.reader}"}
            )
            assert r.status_code == 403, (method, path, "non-staff", r.status_code, r.text)
            assert "detail" in r.json()
            checked += 1
        for path in reads:
            for label, value in bad_headers.items():
                r = http.get(path, headers=[(b"Authorization", value.encode("utf-8"))])
                assert r.status_code == 401, (path, label, r.status_code, r.text)
                checked += 1
            ok = http.get(path, headers={"Authorization": f"Token {api.tokens.reader}"})
            assert ok.status_code == 200, (path, ok.text)
        # The catalog the refused DELETEs aimed at is still there.
        assert http.get(item).status_code == 200
    record.try_(
        f"{len(writes)} write endpoints x (no header, Bearer scheme, "
        f"{len(bad_headers)} bad Token headers, a non-staff token); "
        f"{len(reads)} read endpoints x {len(bad_headers)} bad Token headers"
    )
    record.hold("every bad or revoked credential got 401, every non-staff write 403")
    record.figure("requests checked", checked)
    record.summarize(f"{checked} requests: bad, absent, revoked credentials 401; non-staff 403")
    _assert_alive(api)


def test_anonymous_read_can_be_switched_off(pg_url: str) -> None:
    from syncd.api.app import create_app

    settings = load_settings({"SYNCD_DATABASE_URL": pg_url, "SYNCD_ANONYMOUS_READ": "false"})
    engine = make_engine(pg_url)
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            for path in (CATALOGS, "/api/marketplace-software-versions/"):
                r = client.get(path)
                assert r.status_code == 401, (path, r.status_code, r.text)
    finally:
        engine.dispose()


# --- bodies ------------------------------------------------------------------------------


def _raw_request(port: int, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a hand-made HTTP/1.1 request; return what the server answered (maybe nothing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server may close early on an oversized body: that is a refusal too
        with contextlib.suppress(OSError):  # already closed by the server: same refusal
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer


def test_oversized_and_deeply_nested_bodies_are_refused(
    api: Api, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_body_limits")
    auth = {"Authorization": f"Token {api.tokens.staff}"}
    outcomes: dict[str, int] = {}
    with httpx.Client(base_url=api.url, timeout=60, headers=auth) as http:
        # Declared too large: refused from the Content-Length alone.
        big = b'{"name": "' + b"x" * (MAX_BODY * 20) + b'"}'
        r = http.post(CATALOGS, content=big, headers={"Content-Type": "application/json"})
        outcomes["2 MB body with Content-Length"] = r.status_code
        assert r.status_code == 413, r.text[:300]

        # Chunked, no Content-Length: the limit must hold while streaming, too.
        def chunks() -> Iterator[bytes]:
            yield b'{"description": "'
            for _ in range(200):
                yield b"y" * 10_000
            yield b'"}'

        r = http.post(CATALOGS, content=chunks(), headers={"Content-Type": "application/json"})
        outcomes["2 MB chunked body"] = r.status_code
        assert r.status_code == 413, r.text[:300]

        # Far deeper than Python's recursion limit, yet small enough to pass the size cap.
        for label, depth, body in [
            ("nested arrays, depth 20,000", 20_000, b"[" * 20_000 + b"]" * 20_000),
            (
                "nested arrays in UTF-16, depth 5,000",
                5_000,
                ("[" * 5_000 + "]" * 5_000).encode("utf-16"),
            ),
            (
                "metadata nested 40 deep",
                40,
                b'{"name":"RelSec","version":"d40","catalog_type":"source_package","metadata":'
                + b'{"a":' * 40
                + b"1"
                + b"}" * 40
                + b"}",
            ),
            (
                "nested objects in metadata, depth 5,000",
                5_000,
                b'{"name":"RelSec","version":"deep","catalog_type":"source_package","metadata":'
                + b'{"a":' * 5_000
                + b"1"
                + b"}" * 5_000
                + b"}",
            ),
        ]:
            assert len(body) < MAX_BODY, depth
            for path in (CATALOGS, f"{CATALOGS}import_catalog/"):
                r = http.post(path, content=body, headers={"Content-Type": "application/json"})
                outcomes[f"{label} -> {path}"] = r.status_code
                assert r.status_code in (400, 413, 422), (label, path, r.status_code, r.text[:300])
        # Not JSON at all, invalid UTF-8, and a wrong content type.
        for label, body, ctype in [
            ("invalid UTF-8", b'{"name": "\xff\xfe"}', "application/json"),
            ("truncated JSON", b'{"name": "Rel', "application/json"),
            ("form body", b"name=x&version=y", "application/x-www-form-urlencoded"),
        ]:
            r = http.post(CATALOGS, content=body, headers={"Content-Type": ctype})
            outcomes[label] = r.status_code
            assert 400 <= r.status_code < 500, (label, r.status_code, r.text[:300])

    # A client that announces a huge body and then sends only a little of it.
    head = (
        f"POST {CATALOGS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token "
        f"{api.tokens.staff}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10**12}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = _raw_request(api.server.port, head, [b"{" * 1000])
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else 0
    outcomes["Content-Length 1 TB, 1 kB sent"] = status
    assert status in (0, 400, 413), answer[:300]
    _assert_alive(api)
    record.try_(", ".join(outcomes))
    record.hold(
        f"oversized bodies got 413 (limit {MAX_BODY:,} B), deep and malformed JSON a 4xx; "
        "no 500, the API kept serving"
    )
    record.figure("statuses", outcomes)
    record.summarize(
        f"{len(outcomes)} bad bodies: oversized 413, deep or malformed JSON 400; no 5xx"
    )


# --- source_url -------------------------------------------------------------------------

REFUSED_BY_DEFAULT = [
    "file:///etc/passwd",
    "file://localhost/etc/shadow",
    "http://127.0.0.1:5432/",
    "http://localhost/x.json",
    "http://10.0.0.5/x.json",
    "http://172.16.3.4/x.json",
    "http://192.168.1.1/x.json",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/x.json",
    "http://[::ffff:127.0.0.1]/x.json",
    "http://2130706433/x.json",
    "http://0x7f000001/x.json",
    "http://0.0.0.0:8000/",
    "http://127.1/x.json",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[64:ff9b::a00:1]/x.json",
    "http://[2002:a9fe:a9fe::1]/x.json",
    "http://[::127.0.0.1]/x.json",
    "http://[fec0::1]/x.json",
]
REFUSED_ALWAYS = [
    "ftp://example.org/x.json",
    "gopher://example.org/",
    "javascript:alert(1)",
    "data:application/json,{}",
    "jar:file:///x!/y",
    "//example.org/x.json",
    "example.org/x.json",
    "http://",
]
ACCEPTED = ["https://www.eessi.io/api_data/data/", "http://example.org/repology.json"]
# Loopback written as a decimal or hex number, or a shortened dotted quad: no URL to DRF's
# URLField ("Enter a valid URL."), so refused even where the operator allows private hosts.
ENCODED_IPS = ["http://2130706433/x.json", "http://0x7f000001/x.json", "http://127.1/x.json"]


def _source_outcomes(client: httpx.Client | TestClient, urls: list[str]) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    for url in urls:
        r = client.post(CATALOGS, json=_catalog_body(source_url=url))
        outcomes[url] = r.status_code
        if r.status_code == 400:
            assert "source_url" in r.json(), (url, r.text)
    return outcomes


def test_source_url_schemes_and_private_hosts(
    api: Api, pg_url: str, reliability: Callable[[str], CaseRecord], tmp_path: Path
) -> None:
    record = reliability("api_source_url")
    with api.client(api.tokens.staff) as staff:
        refused = _source_outcomes(staff, REFUSED_BY_DEFAULT + REFUSED_ALWAYS)
        accepted = _source_outcomes(staff, ACCEPTED)
        # import_catalog's `source` and PATCH of source_url must be held to the same rule.
        imports = {
            url: staff.post(f"{CATALOGS}import_catalog/", json={"name": "Spack", "source": url})
            for url in ("file:///etc/passwd", "http://169.254.169.254/", "ftp://example.org/x")
        }
        some_uuid = staff.get(CATALOGS).json()[0]["uuid"]
        patched = staff.patch(f"{CATALOGS}{some_uuid}/", json={"source_url": "http://10.1.2.3/"})
    wrongly_accepted = {u: s for u, s in refused.items() if s != 400}
    assert not wrongly_accepted, (
        f"accepted though private, local or not http(s): {wrongly_accepted}"
    )
    assert all(s == 201 for s in accepted.values()), accepted
    assert all(r.status_code == 400 for r in imports.values()), {
        u: (r.status_code, r.text[:200]) for u, r in imports.items()
    }
    assert patched.status_code == 400, patched.text

    # With the operator's settings on, file:// and private hosts are accepted (air-gapped
    # mirrors, an internal mirror), but other schemes still are not.
    from syncd.api.app import create_app

    settings = load_settings(
        {
            "SYNCD_DATABASE_URL": pg_url,
            "SYNCD_ALLOW_FILE_SOURCES": "true",
            "SYNCD_ALLOW_PRIVATE_SOURCES": "true",
        }
    )
    with session_scope(make_session_factory(make_engine(pg_url))) as session:
        _, key = create_token(session, is_staff=True)
    engine = make_engine(pg_url)
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            client.headers["Authorization"] = f"Token {key}"
            allowed = _source_outcomes(
                client,
                ["file:///srv/mirror/repology.json"]
                + [u for u in REFUSED_BY_DEFAULT if u.startswith("http") and u not in ENCODED_IPS],
            )
            still_refused = _source_outcomes(client, REFUSED_ALWAYS + ENCODED_IPS)
    finally:
        engine.dispose()
    assert all(s == 201 for s in allowed.values()), allowed
    assert all(s == 400 for s in still_refused.values()), still_refused
    record.try_(
        f"{len(REFUSED_BY_DEFAULT)} file:// and private, loopback, link-local, encoded-IP or "
        "IPv6-transition URLs, "
        f"{len(REFUSED_ALWAYS)} other schemes or malformed URLs, on create, import_catalog "
        "and PATCH; then the same with SYNCD_ALLOW_FILE_SOURCES/ALLOW_PRIVATE_SOURCES on"
    )
    record.hold(
        "refused (400 on source_url) unless the operator allows it; non-http(s) schemes "
        "refused always; public http(s) URLs accepted"
    )
    record.figure("URLs refused by default", len(refused))
    record.figure("URLs accepted when allowed", len(allowed))
    record.figure("schemes refused always", len(still_refused))
    record.summarize(
        f"{len(refused)} file://, private-network or non-http(s) URLs refused; "
        f"{len(allowed)} accepted once the operator allows them"
    )
