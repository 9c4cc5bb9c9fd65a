"""Cheap floods through request bodies, against a real `syncd api` process.

A body of 33 `{` and a megabyte of spaces costs its sender nothing. Before, every such body
was read and scanned byte by byte in Python on the event loop, before authentication, on
any write path: eight anonymous senders held /health at one to two seconds. Now an anonymous
write is answered 401 from its headers (its body is never read), and an authenticated body
is checked in native code.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from syncd.db.migrate import upgrade
from tests.reliability.harness import ApiServer, percentile, syncd_env
from tests.reliability.results import REPO_ROOT, CaseRecord
from tests.reliability.test_api_security import Api, _make_tokens
from tests.support.body_flood import DEEP_BODY, PATH, read_head, request_head, status_of
from tests.support.services import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

FLOODERS = 8
FLOOD_SECONDS = 5.0
# /health's median under the flood: 1 to 2 s before the change (a few ms without a flood);
# about 30 ms after it.
HEALTH_P50_BOUND = 0.3


@pytest.fixture(scope="module")
def api(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    logs = tmp_path_factory.mktemp("api_body_flood")
    with postgres_database("syncd_rel_flood") as db_url:
        upgrade(db_url)
        tokens = _make_tokens(db_url)
        env = syncd_env(database_url=db_url, broker_url=amqp_url, queue_name="syncd_rel_flood")
        server = ApiServer(env, logs / "api.log").start()
        try:
            yield Api(server.base_url, db_url, tokens, server)
        finally:
            server.stop()


def _health_latencies(url: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=30) as http:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            assert http.get(url + "/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    return latencies


def test_anonymous_write_is_refused_from_its_headers(api: Api) -> None:
    """The 401 comes before a byte of the announced body was sent: it was never waited for."""
    with socket.create_connection(("127.0.0.1", api.server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(request_head(len(DEEP_BODY)))
        answer = read_head(sock)  # b"" when the server waited for the body (10 s)
        seconds = time.monotonic() - started
    assert status_of(answer) == 401, f"no answer before the body was sent: {answer[:200]!r}"
    assert seconds < 5


def test_an_invalid_token_is_refused_before_the_body(api: Api) -> None:
    with socket.create_connection(("127.0.0.1", api.server.port), timeout=10) as sock:
        sock.sendall(request_head(len(DEEP_BODY), token="0" * 40))
        answer = read_head(sock)
    assert status_of(answer) == 401, answer[:200]


def test_authenticated_deep_body_is_still_refused(api: Api) -> None:
    with api.client(api.tokens.staff) as staff:
        deep = staff.post(PATH, content=DEEP_BODY, headers={"Content-Type": "application/json"})
        shallow = staff.post(
            PATH, json={"name": "Flood", "version": "1", "catalog_type": "source_package"}
        )
    assert deep.status_code == 400, deep.text[:300]
    assert "nested deeper than 32 levels" in deep.json()["detail"]
    assert shallow.status_code == 201, shallow.text


def test_anonymous_deep_body_flood_leaves_health_fast(
    api: Api, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_body_flood")
    quiet = _health_latencies(api.url, 1.0)
    flood_args = [str(api.server.port), str(FLOODERS), str(FLOOD_SECONDS + 1)]
    flood = subprocess.Popen(
        [sys.executable, "-m", "tests.support.body_flood", *flood_args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)  # every flooder is sending
        loaded = _health_latencies(api.url, FLOOD_SECONDS)
        out, _ = flood.communicate(timeout=60)
    finally:
        flood.kill()
    statuses = {int(k): v for k, v in json.loads(out).items()}
    quiet_p50, loaded_p50 = percentile(quiet, 50), percentile(loaded, 50)
    sent = sum(statuses.values())
    record.try_(
        f"{FLOODERS} anonymous clients, each POSTing 33 '{{' and 999,000 spaces to {PATH} "
        f"in a loop for {FLOOD_SECONDS + 1:g} s, while /health was polled"
    )
    record.figure("bodies sent", sent)
    record.figure("their statuses", statuses)
    record.figure("/health p50 without the flood (ms)", round(quiet_p50 * 1000, 1))
    record.figure("/health p50 under the flood (ms)", round(loaded_p50 * 1000, 1))
    record.figure("/health max under the flood (ms)", round(max(loaded) * 1000, 1))
    assert set(statuses) == {401}, statuses
    assert sent >= FLOODERS, statuses
    assert loaded_p50 < HEALTH_P50_BOUND, (
        f"/health p50 {loaded_p50 * 1000:.0f} ms under the flood "
        f"(without it: {quiet_p50 * 1000:.0f} ms)"
    )
    assert api.server.process.alive()
    record.hold(
        "every anonymous body got 401 without being read; /health stayed fast (before: each "
        "body was scanned on the event loop before authentication and answered 400, and "
        "/health p50 rose to 1-2 s)"
    )
    record.summarize(
        f"{sent} anonymous 1 MB deep bodies: 401 unread; /health p50 "
        f"{loaded_p50 * 1000:.0f} ms (quiet {quiet_p50 * 1000:.0f} ms; before: 1-2 s)"
    )
