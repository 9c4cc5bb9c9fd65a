"""Slow clients: connections that pipeline big reads and never read the answers.

Against a real `syncd api` process (uvicorn) on PostgreSQL. A client's receive buffer, the
kernel's and the server's write buffers, the handler threads and the database pool only meet
in a real server. Each slow connection first asks for a package list bigger than the kernel
buffers a connection (up to 4 MiB): its answer fills every buffer on the way. The requests
it pipelined after it then have their answers computed but cannot send them; before the
change, package retrieves kept their database session and its transaction open meanwhile.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from syncd.db.engine import make_engine
from syncd.db.migrate import upgrade
from syncd.db.tables import Package
from tests.reliability.harness import PROCESS_TEST, ApiServer, syncd_env
from tests.reliability.results import CaseRecord
from tests.support.costly_catalog import costly_catalog
from tests.support.services import postgres_database

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(300)]

PACKAGES = "/api/marketplace-software-packages/"
TEXT_LENGTH = 20_000  # each package's description and each target's location
# 300 packages of 20 kB: a 6 MB answer, more than a connection's kernel buffers hold.
BIG_LIST = f"{PACKAGES}?page_size=300"
ROWS = 400
API_THREADS = 2  # the API's pool: 2 connections, plus 10 of overflow
SLOW_CONNECTIONS = 16  # more than the pool's 12 connections
RETRIEVES_PER_CONNECTION = 3
SEND_TIMEOUT = 8.0
CACHE_WAIT = 2.0
# The Helm chart's liveness probe gives /health 5 s.
HEALTH_BOUND = 5.0
# Long enough to see the old code's 30 s pool timeout through, so its figures are measured.
PROBE_TIMEOUT = 40.0


@dataclass
class SlowApi:
    url: str
    port: int
    db_name: str
    uuids: list[str]
    server: ApiServer


@pytest.fixture(scope="module")
def api(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowApi]:
    logs = tmp_path_factory.mktemp("slow_clients")
    with postgres_database("syncd_rel_slow") as db_url:
        upgrade(db_url)
        engine = make_engine(db_url)
        try:
            costly_catalog(engine, rows=ROWS, text_length=TEXT_LENGTH)
            with engine.connect() as conn:
                uuids = [u.hex for u in conn.scalars(select(Package.uuid).order_by(Package.id))]
        finally:
            engine.dispose()
        env = syncd_env(
            database_url=db_url,
            broker_url=amqp_url,
            queue_name="syncd_rel_slow",
            api_threads=API_THREADS,
            api_cache_seconds=300,  # nothing expires during the test
            api_send_timeout_seconds=SEND_TIMEOUT,
            api_cache_wait_seconds=CACHE_WAIT,
        )
        server = ApiServer(env, logs / "api.log").start()
        try:
            db_name = make_url(db_url).database or ""
            yield SlowApi(server.base_url, server.port, db_name, uuids, server)
        finally:
            server.stop()


def _slow_connection(port: int, paths: list[str]) -> socket.socket:
    """A connection with a 4 kB receive buffer that pipelines GETs of `paths` and then never
    reads: the server's answers pile up on its side."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connect: the window the client offers is sized from it.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    # The Host other clients send too: it is part of the response cache's key.
    requests = b"".join(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() for path in paths
    )
    sock.sendall(requests)
    return sock


def _dropped_by_server(sock: socket.socket, seconds: float = 5.0) -> bool:
    """Read what is left: True when the server reset the connection (after at most the
    little the kernel had taken in), False when it answered everything and closed, or was
    still sending after `seconds`."""
    sock.settimeout(0.5)
    received = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            continue
        if not chunk:
            return received < 64 * 1024  # closed at once, nothing more sent: dropped too
        received += len(chunk)
    return False


@dataclass
class Answer:
    path: str
    status: int | str  # the HTTP status, or what went wrong ("timeout", "ReadError"...)
    seconds: float
    content_type: str = ""
    retry_after: str = ""

    @property
    def acceptable(self) -> bool:
        """A 200, or a 503 in DRF's shape with Retry-After: never a plain-text 500 or a hang."""
        if self.status == 200:
            return True
        return (
            self.status == 503
            and self.content_type.startswith("application/json")
            and bool(self.retry_after)
        )


def _get(url: str, path: str, timeout: float = PROBE_TIMEOUT) -> Answer:
    started = time.monotonic()
    try:
        r = httpx.get(url + path, timeout=timeout)
    except httpx.TimeoutException:
        return Answer(path, "timeout", time.monotonic() - started)
    except httpx.HTTPError as exc:
        return Answer(path, type(exc).__name__, time.monotonic() - started)
    return Answer(
        path,
        r.status_code,
        time.monotonic() - started,
        r.headers.get("content-type", ""),
        r.headers.get("retry-after", ""),
    )


def _concurrently(url: str, paths: list[str]) -> list[Answer]:
    answers: list[Answer] = []
    lock = threading.Lock()

    def one(path: str) -> None:
        answer = _get(url, path)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one, args=(path,), daemon=True) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROBE_TIMEOUT + 10)
    return answers


def _idle_in_transaction(db_name: str, older_than_s: float = 1.0) -> int:
    """Sessions of the API's database that sat "idle in transaction" for over `older_than_s`
    (a handler between two statements of its transaction is so for milliseconds only)."""
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = "
            "'idle in transaction' AND state_change < now() - make_interval(secs => %s)",
            (db_name, older_than_s),
        ).fetchone()
    return int(row[0]) if row else 0


def _sample_idle(db_name: str, seconds: float) -> int:
    """The most sessions seen idle in transaction while sampling for `seconds`."""
    worst = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        worst = max(worst, _idle_in_transaction(db_name))
        time.sleep(0.25)
    return worst


def _count_events(
    server: ApiServer, name: str, seconds: float, enough: int = SLOW_CONNECTIONS
) -> int:
    """How many `name` events the server logged, waiting up to `seconds` for `enough`."""
    deadline = time.monotonic() + seconds
    while True:
        count = len(server.process.events(name))
        if count >= enough or time.monotonic() > deadline:
            return count
        time.sleep(0.5)


def _figures(answers: list[Answer]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for answer in answers:
        statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
    return {
        "statuses": statuses,
        "slowest_s": round(max((a.seconds for a in answers), default=0.0), 2),
    }


# --- item 5: the database pool and /health --------------------------------------------


def test_slow_readers_hold_no_database_session(
    api: SlowApi, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_slow_readers")
    slow: list[socket.socket] = []
    try:
        for i in range(SLOW_CONNECTIONS):
            first = i * RETRIEVES_PER_CONNECTION
            retrieves = [
                f"{PACKAGES}{uuid}/" for uuid in api.uuids[first : first + RETRIEVES_PER_CONNECTION]
            ]
            slow.append(_slow_connection(api.port, [BIG_LIST, *retrieves]))
        time.sleep(1.5)  # each connection's answers now wait for a reader that never comes

        # Other anonymous readers, on URLs of their own (no cache entry to replay).
        spare = api.uuids[SLOW_CONNECTIONS * RETRIEVES_PER_CONNECTION :]
        others = [f"{PACKAGES}{uuid}/" for uuid in spare[:4]] + [
            "/api/marketplace-software-versions/?page_size=5",
            "/api/marketplace-software-targets/?page_size=5",
            "/api/marketplace-software-catalogs/",
        ]
        result: dict[str, Any] = {}
        probes = threading.Thread(
            target=lambda: result.update(others=_concurrently(api.url, others)), daemon=True
        )
        probes.start()
        health = [_get(api.url, "/health") for _ in range(3)]
        idle_during = _sample_idle(api.db_name, 3.0)
        probes.join(PROBE_TIMEOUT + 20)
        other_answers: list[Answer] = result.get("others", [])

        # The server gives up on answers nobody reads: every slow connection is dropped.
        drops_logged = _count_events(api.server, "response_send_timeout", SEND_TIMEOUT + 20)
        dropped = sum(_dropped_by_server(sock) for sock in slow)
        idle_after = _idle_in_transaction(api.db_name, older_than_s=0)
    finally:
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.close()
    health_s = max(a.seconds for a in health)
    record.try_(
        f"{SLOW_CONNECTIONS} connections with a 4 kB receive buffer, each pipelining a "
        f"300-package list (6 MB) and {RETRIEVES_PER_CONNECTION} package retrieves, "
        f"never reading; the API with {API_THREADS} handler threads (a pool of "
        f"{API_THREADS + 10} connections), SYNCD_API_SEND_TIMEOUT_SECONDS={SEND_TIMEOUT:g}; "
        f"meanwhile {len(others)} other anonymous reads and 3 x /health"
    )
    record.figure("sessions idle in transaction during the stall (most seen)", idle_during)
    record.figure("sessions idle in transaction after the drop", idle_after)
    record.figure("/health slowest (s)", round(health_s, 3))
    record.figure("other readers", _figures(other_answers))
    record.figure("slow connections dropped by the server", dropped)
    record.figure("seconds until the first drop (send timeout)", SEND_TIMEOUT)
    print(
        f"idle in transaction {idle_during}, /health {[round(a.seconds, 2) for a in health]}, "
        f"others {[(a.status, round(a.seconds, 2)) for a in other_answers]}, dropped {dropped}, "
        f"idle after {idle_after}"
    )
    assert idle_during == 0, f"{idle_during} sessions idle in transaction behind slow clients"
    assert all(a.status == 200 for a in health), [(a.status, a.seconds) for a in health]
    assert health_s < HEALTH_BOUND, f"/health took {health_s:.1f} s"
    assert len(other_answers) == len(others)
    bad = [a for a in other_answers if not a.acceptable]
    assert not bad, f"other readers got {bad}"
    assert drops_logged >= SLOW_CONNECTIONS, f"{drops_logged} response_send_timeout lines"
    assert dropped == SLOW_CONNECTIONS, f"only {dropped} of the slow connections were dropped"
    assert idle_after == 0
    record.hold(
        "no session stayed idle in transaction behind a slow client; /health answered within "
        f"{HEALTH_BOUND:g} s; every other reader got its answer; the server dropped each slow "
        f"connection once its answer had waited {SEND_TIMEOUT:g} s to be sent"
    )
    record.summarize(
        f"{SLOW_CONNECTIONS} slow readers: {idle_during} sessions idle in transaction, "
        f"/health {health_s:.2f} s, other readers {_figures(other_answers)['statuses']} in "
        f"{_figures(other_answers)['slowest_s']} s; dropped after {SEND_TIMEOUT:g} s"
    )


# --- item 6: one slow connection and the response cache -------------------------------


def test_a_slow_reader_does_not_stall_the_cached_url(
    api: SlowApi, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_slow_reader_cache")
    # A retrieve nobody asked for yet: a cache miss, which the slow connection fills.
    shared = f"{PACKAGES}{api.uuids[-1]}/"
    big = f"{BIG_LIST}&page=1"  # a URL of this test's own, to find in the access log
    timeouts_before = len(api.server.process.events("response_send_timeout"))
    slow = _slow_connection(api.port, [big, shared])
    try:
        # Once the list's answer has started, the retrieve's fill runs and its answer waits.
        api.server.process.wait_log(re.escape(f"GET {big} HTTP/1.1"), timeout=30)
        time.sleep(1.0)
        answers = _concurrently(api.url, [shared] * 5)  # others want it too
        _count_events(api.server, "response_send_timeout", SEND_TIMEOUT + 20, timeouts_before + 1)
        dropped = _dropped_by_server(slow)
    finally:
        slow.close()
    slowest = max((a.seconds for a in answers), default=0.0)
    record.try_(
        "a connection with a 4 kB receive buffer pipelines a 6 MB package list and then a "
        "package retrieve not yet cached, never reading; 5 other anonymous clients then ask "
        "for that retrieve "
        f"(SYNCD_API_CACHE_WAIT_SECONDS={CACHE_WAIT:g}, "
        f"SYNCD_API_SEND_TIMEOUT_SECONDS={SEND_TIMEOUT:g})"
    )
    record.figure("other readers", _figures(answers))
    record.figure("slow connection dropped by the server", dropped)
    print(f"cached URL readers {_figures(answers)}, dropped {dropped}")
    assert len(answers) == 5
    assert all(a.status == 200 for a in answers), [a for a in answers if a.status != 200]
    # The fill finishes its entry before it sends: the others need not wait for the slow
    # client at all, and at most CACHE_WAIT for a fill that is slow to compute.
    assert slowest < CACHE_WAIT + 2.0, f"readers of a URL being filled waited {slowest:.1f} s"
    assert dropped
    record.hold(
        "the other readers got their answers without waiting for the slow client, which the "
        f"server dropped after {SEND_TIMEOUT:g} s"
    )
    record.summarize(f"5 readers of the URL a slow client fills: 200 in at most {slowest:.2f} s")


def test_a_slow_client_that_keeps_reading_gets_its_whole_answer(api: SlowApi) -> None:
    """The send deadline drops stalled clients, not slow ones: a client taking its 6 MB
    answer at 256 kB/s (the server's buffers stay full for far longer than the deadline)
    gets all of it."""
    path = f"{BIG_LIST}&page=1&o=name"  # a URL of this test's own
    rate = 256 * 1024  # bytes per second
    sock = _slow_connection(api.port, [path])
    received = bytearray()
    started = time.monotonic()
    try:
        sock.settimeout(SEND_TIMEOUT + 10)
        while True:
            head, _, body = bytes(received).partition(b"\r\n\r\n")
            if body and len(body) >= _content_length(head):
                break
            chunk = sock.recv(8192)
            assert chunk, f"the server closed the connection after {len(received)} bytes"
            received += chunk
            ahead = len(received) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    finally:
        sock.close()
    seconds = time.monotonic() - started
    print(f"slow but reading: {len(received):,} bytes in {seconds:.1f} s")
    assert received.startswith(b"HTTP/1.1 200"), bytes(received[:200])
    assert seconds > 2 * SEND_TIMEOUT, f"{seconds:.1f} s: the answer was not slow enough"


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise AssertionError(f"no Content-Length in {head[:300]!r}")
