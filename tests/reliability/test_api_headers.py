"""Response headers at the edges, against a real `syncd api` process: nosniff on every
answer (the app's, the cache's, the docs' files, uvicorn's own 400 and the header
deadline's 408), HEAD lengths, headers trickled past the deadline, and the docs page in a
browser with no internet.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from syncd.db.migrate import upgrade
from tests.reliability.harness import ApiServer, syncd_env
from tests.reliability.results import CaseRecord
from tests.reliability.test_api_security import Api, _make_tokens
from tests.support.browser import dump_dom, requires_chromium
from tests.support.services import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

CATALOGS = "/api/marketplace-software-catalogs/"
LISTS = (
    CATALOGS,
    "/api/marketplace-software-packages/",
    "/api/marketplace-software-versions/",
    "/api/marketplace-software-targets/",
)
MAX_BODY = 100_000
HEADER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def api(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    logs = tmp_path_factory.mktemp("api_headers")
    with postgres_database("syncd_rel_headers") as db_url:
        upgrade(db_url)
        tokens = _make_tokens(db_url)
        env = syncd_env(
            database_url=db_url,
            broker_url=amqp_url,
            queue_name="syncd_rel_headers",
            max_body_bytes=MAX_BODY,
            api_cache_seconds=300,  # the second anonymous read is a cache hit
            api_header_timeout_seconds=HEADER_TIMEOUT,
        )
        server = ApiServer(env, logs / "api.log").start()
        try:
            with httpx.Client(base_url=server.base_url, timeout=30) as staff:
                staff.headers["Authorization"] = f"Token {tokens.staff}"
                body = {"name": "RelHeaders", "version": "1", "catalog_type": "source_package"}
                assert staff.post(CATALOGS, json=body).status_code == 201
            yield Api(server.base_url, db_url, tokens, server)
        finally:
            server.stop()


def _raw(port: int, data: bytes, wait: float = 10) -> bytes:
    """Send `data` on a new connection; everything the server answered until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def _head_lines(answer: bytes) -> dict[str, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}


def test_nosniff_on_every_answer(api: Api, reliability: Callable[[str], CaseRecord]) -> None:
    record = reliability("api_nosniff")
    staff = {"Authorization": f"Token {api.tokens.staff}"}
    deep = b'{"metadata": ' + b"[" * 40 + b"]" * 40 + b"}"
    requests: list[tuple[str, str, str, dict[str, str], bytes | None]] = [
        ("/health", "GET", "/health", {}, None),
        ("/ready", "GET", "/ready", {}, None),
        ("/metrics", "GET", "/metrics", {}, None),
        ("OpenAPI document", "GET", "/api/schema/", {}, None),
        ("docs page", "GET", "/api/docs/", {}, None),
        ("docs script", "GET", "/api/docs/static/swagger-ui-bundle.js", {}, None),
        ("list", "GET", CATALOGS, {}, None),
        ("list, cache hit", "GET", CATALOGS, {}, None),
        ("HEAD list", "HEAD", CATALOGS, {}, None),
        ("OPTIONS", "OPTIONS", CATALOGS, {}, None),
        ("404", "GET", f"{CATALOGS}{'0' * 32}/", {}, None),
        ("401", "POST", CATALOGS, {}, b"{}"),
        ("405", "POST", LISTS[1], {}, b"{}"),
        ("413", "POST", CATALOGS, staff, b"x" * (MAX_BODY + 1)),
        ("400 too deep", "POST", CATALOGS, staff, deep),
    ]
    missing: list[str] = []
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=api.url, timeout=30) as http:
        for label, method, url, headers, content in requests:
            r = http.request(method, url, headers=headers, content=content)
            statuses[label] = r.status_code
            if r.headers.get("x-content-type-options") != "nosniff":
                missing.append(f"{label} ({r.status_code})")
    # uvicorn's own answer to a request it cannot parse, and the header deadline's 408.
    for label, data in (
        ("malformed request line", b"NOT HTTP AT ALL\r\n\r\n"),
        ("headers never finished", f"GET {CATALOGS} HTTP/1.1\r\nHost: x\r\n".encode()),
    ):
        answer = _raw(api.server.port, data)
        statuses[label] = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else 0
        if _head_lines(answer).get("x-content-type-options") != "nosniff":
            missing.append(f"{label} ({statuses[label]})")
    record.try_("17 kinds of answer: " + ", ".join(f"{k} {v}" for k, v in statuses.items()))
    record.figure("answers without nosniff", f"{len(missing)} of {len(statuses)}")
    assert not missing, f"no X-Content-Type-Options: nosniff on: {missing}"
    assert statuses["docs script"] == 200 and statuses["401"] == 401, statuses
    record.hold("every answer carried X-Content-Type-Options: nosniff (before: none did)")


def test_head_never_claims_an_empty_body(
    api: Api, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_head_length")
    lengths: dict[str, str] = {}
    with httpx.Client(base_url=api.url, timeout=30) as http:
        catalog = http.get(CATALOGS).json()[0]["uuid"]
        for url in (*LISTS, f"{CATALOGS}{catalog}/", f"{CATALOGS}{catalog}/cpu_targets/"):
            host = f"127.0.0.1:{api.server.port}"  # as httpx sends it: the same links
            head = f"HEAD {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            answer = _raw(api.server.port, head, 3)
            declared = _head_lines(answer).get("content-length")
            body = http.get(url).content
            lengths[url] = "none" if declared is None else declared
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert declared in (None, str(len(body))), (url, declared, len(body))
        staff = {"Authorization": f"Token {api.tokens.staff}"}
        discover = http.head(f"{CATALOGS}discover/", headers=staff)
        assert discover.headers.get("content-length") != "0", discover.headers
    record.try_("HEAD on the four lists, a catalog, its cpu_targets and discover")
    record.figure("HEAD Content-Length", lengths)
    record.hold(
        "HEAD on a list sends no Content-Length (its page is not rendered); on an object "
        "the length of the GET's body; never `Content-Length: 0` (before: 0 on every one)"
    )


def test_trickled_headers_are_cut_at_the_deadline(api: Api) -> None:
    """One byte every 0.2 s keeps a connection busy but never finishes the headers: the
    deadline counts from the connection, not from the last byte."""
    request = f"GET {CATALOGS} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: {'a' * 100}\r\n\r\n"
    answer = b""
    with socket.create_connection(("127.0.0.1", api.server.port), timeout=10) as sock:
        sock.settimeout(0.2)
        started = time.monotonic()
        for byte in request.encode():
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        seconds = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert seconds < HEADER_TIMEOUT + 3, seconds


@requires_chromium
def test_docs_page_works_without_internet(
    api: Api, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_docs_offline")
    page = httpx.get(api.url + "/api/docs/", timeout=30).text
    external = re.findall(r'(?:src|href)="(https?://[^"]*)"', page)
    dom = dump_dom(api.url + "/api/docs/")
    # Swagger UI rendered the OpenAPI document: the operations are in the page.
    operations = dom.count('class="opblock-summary-path"')
    record.try_("the docs page in headless Chromium that resolves no host but 127.0.0.1")
    record.figure("assets loaded from other hosts", len(external))
    record.figure("operations rendered", operations)
    assert not external, f"the docs page loads {external}"
    assert 'class="swagger-ui' in dom, dom[:2000]
    assert "/api/marketplace-software-catalogs/{uuid}/update_catalog/" in dom, dom[:2000]
    assert operations >= 20, operations
    record.hold(
        "Swagger UI rendered every operation from the package's own script and stylesheet "
        "(before: loaded from a CDN, a blank page without internet)"
    )
