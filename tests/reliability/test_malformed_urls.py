"""Malformed source URLs: unbalanced IPv6 brackets, impossible ports, characters no HTTP
client accepts. The API answers 400 on the field (never a 500) on create, PUT, PATCH and
import_catalog; the worker, handed such a source in a message, fails the command permanently
with update_errors that say why (dead-lettered at once, no retry).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.fetch import Fetcher, check_source_allowed
from syncd.config import Settings, load_settings
from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.errors import PermanentError, UpstreamError
from tests.reliability.catalogs import catalog_rows
from tests.reliability.harness import (
    command_env,
    queue_state,
    running,
    wait_consumers,
    wait_until,
    worker_process,
)
from tests.reliability.results import CaseRecord

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

CATALOGS = "/api/marketplace-software-catalogs/"

MALFORMED = [
    "http://[::1/x",
    "https://[::1/repology.json",
    "http://[::1]]/x",
    "http://[not-an-ip]/x",
    "http://example.org:99999/x",
    "http://example.org:-1/x",
    "http://example.org:0/x",
    "http://example.org:65536/",
    "http://example.org:8o/x",
    "http://example.org:+80/x",
    "https://[fe80::1/x",
    "http://[/",
    "http://]/",
]


@st.composite
def malformed_urls(draw: st.DrawFn) -> str:
    """URL-shaped strings built around the pieces parsers choke on."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "file", "ftp", ""]))
    host = draw(
        st.sampled_from(["example.org", "[::1", "::1]", "[::1]]", "[", "]", "[x]", "a b", ""])
    )
    port = draw(
        st.one_of(
            st.just(""),
            st.integers(-(10**6), 10**6).map(lambda n: f":{n}"),
            st.text(alphabet="0123456789-+x[]: ", max_size=6).map(lambda t: f":{t}"),
        )
    )
    path = draw(st.text(alphabet="/[]%:@?#ab\\ ", max_size=8))
    return f"{scheme}://{host}{port}{path}"


@pytest.fixture
def client(pg_url: str) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    from syncd.api.app import create_app
    from syncd.tokens import create_token

    config = load_settings({"SYNCD_DATABASE_URL": pg_url, "SYNCD_API_CACHE_SECONDS": "0"})
    engine = make_engine(pg_url)
    with session_scope(make_session_factory(engine)) as session:
        _, key = create_token(session, name="rel-urls", is_staff=True)
    try:
        with TestClient(create_app(config, engine=engine), raise_server_exceptions=False) as c:
            headers = {"Authorization": f"Token {key}"}
            made = c.post(
                CATALOGS,
                json={"name": "RelUrl", "version": "1", "catalog_type": "source_package"},
                headers=headers,
            )
            assert made.status_code == 201, made.text
            yield c, headers, made.json()["uuid"]
    finally:
        engine.dispose()


def _send(client: TestClient, headers: dict[str, str], uuid: str, url: str) -> dict[str, int]:
    """The URL through every write that takes one: {label: status}."""
    item = f"{CATALOGS}{uuid}/"
    full = {"name": "RelUrl", "version": "2", "catalog_type": "source_package"}
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        ("create", "POST", CATALOGS, {**full, "source_url": url}),
        ("PUT", "PUT", item, {**full, "source_url": url}),
        ("PATCH", "PATCH", item, {"source_url": url}),
        ("import source", "POST", CATALOGS + "import_catalog/", {"name": "Spack", "source": url}),
        (
            "import source_url",
            "POST",
            CATALOGS + "import_catalog/",
            {"name": "Spack", "version": "x", "source_url": url},
        ),
    ]
    return {
        label: client.request(method, path, json=body, headers=headers).status_code
        for label, method, path, body in calls
    }


def test_malformed_source_urls_are_a_400(
    client: tuple[TestClient, dict[str, str], str], reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_malformed_urls")
    http, headers, uuid = client
    statuses: Counter[int] = Counter()
    not_400: list[str] = []
    for url in MALFORMED:
        for label, status in _send(http, headers, uuid, url).items():
            statuses[status] += 1
            if status != 400:
                not_400.append(f"{label} {url}: {status}")
        answer = http.post(CATALOGS + "import_catalog/", json={"name": "Spack", "source": url})
        assert answer.status_code in (400, 401), answer.text
    r = http.patch(f"{CATALOGS}{uuid}/", json={"source_url": MALFORMED[0]}, headers=headers)
    # What is no URL gets DRF URLField's answer (Waldur's source_url is a URLField).
    assert r.json() == {"source_url": ["Enter a valid URL."]}, r.text
    # The fetcher's own check (the worker's path) refuses them with a classified error.
    config = Settings(database_url="sqlite://", allow_private_sources=True)
    unclassified = []
    for url in MALFORMED:
        try:
            check_source_allowed(url, config)
            unclassified.append(f"{url}: accepted")
        except PermanentError as exc:
            assert "not a valid URL" in exc.message, exc.message
        except Exception as exc:
            unclassified.append(f"{url}: {type(exc).__name__}: {exc}")
    with Fetcher(config) as fetcher:
        for url in MALFORMED:
            with pytest.raises(UpstreamError) as raised:
                fetcher.fetch(url)
            assert raised.value.transient is False, url
    fuzzed: Counter[int] = Counter()

    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(url=malformed_urls())
    def fuzz(url: str) -> None:
        for status in _send(http, headers, uuid, url).values():
            fuzzed[status] += 1
            assert status < 500, (url, status)

    fuzz()
    assert not unclassified, unclassified
    assert not not_400, not_400
    requests = sum(statuses.values()) + sum(fuzzed.values())
    record.try_(
        f"{len(MALFORMED)} hand-picked malformed URLs (unbalanced IPv6 brackets, ports "
        "99999/-1/0/65536/8o/+80) as source_url or source on create, PUT, PATCH and "
        "import_catalog, then 150 generated URL-shaped strings on the same five writes; the "
        "same hand-picked URLs through the fetcher's check and Fetcher.fetch"
    )
    record.hold(
        "every hand-picked URL answered 400 on its field, every generated one a 4xx or 2xx "
        "(never a 5xx); the fetcher refused each with a permanent error"
    )
    record.figure("requests", requests)
    record.figure("hand-picked statuses", dict(sorted(statuses.items())))
    record.figure("generated statuses", dict(sorted(fuzzed.items())))
    record.summarize(
        f"{requests} requests with malformed URLs, "
        f"{sum(n for s, n in (statuses + fuzzed).items() if s >= 500)} x 5xx (before: a 500 "
        "for each unbalanced bracket, ports 99999/-1 accepted)"
    )


WORKER_SOURCES = ["http://[::1/x", "http://example.org:99999/x", "http://example.org:-1/x"]


@pytest.mark.rabbitmq
def test_worker_fails_malformed_sources_permanently(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("worker_malformed_source")
    # No retries inside a fetch: a wrongly transient error would show as will_retry.
    queue, env = command_env(pg_url, amqp_url, "rel_urls", fetch_retries=0)
    worker = worker_process(env, logs / "worker.log", threads=2)
    from syncd.broker import make_broker
    from syncd.publish import publish_import

    config = load_settings(env)
    commands = [
        (adapter, f"bad{n}", url)
        for adapter in ("Spack", "EESSI")
        for n, url in enumerate(WORKER_SOURCES)
    ]
    with running(worker):
        wait_consumers(amqp_url, queue, timeout=90)
        broker = make_broker(config)
        try:
            for adapter, version, url in commands:
                publish_import(broker, config, name=adapter, version=version, source=url)
        finally:
            broker.close()
        failed = worker.wait_event("command_failed", timeout=60, count=len(commands))
        dead = wait_until(
            lambda: (n := queue_state(amqp_url, f"{queue}.XQ")[0]) >= len(commands) and n,
            timeout=30,
            what="the commands in the dead-letter queue",
        )
        assert worker.alive()
    engine = make_engine(pg_url)
    try:
        rows = {(r["name"], r["version"]): r["update_errors"] for r in catalog_rows(engine)}
    finally:
        engine.dispose()
    retried = [e for e in failed if e.get("will_retry") is not False]
    unclear = [e for e in failed if "not a valid URL" not in str(e.get("error"))]
    assert not retried, [json.dumps(e)[:300] for e in retried]
    assert not unclear, [json.dumps(e)[:300] for e in unclear]
    # An import downloads before it creates its row: a refused source leaves no catalog.
    assert rows == {}, rows
    assert dead == len(commands)
    record.try_(
        f"{len(commands)} import messages (Spack and EESSI) whose source is "
        + ", ".join(WORKER_SOURCES)
    )
    record.hold(
        "each failed once, permanently (will_retry false, dead-lettered at once), its "
        "command_failed line saying the source is not a valid URL, no catalog row created; "
        "the worker kept running"
    )
    record.figure("commands", len(commands))
    record.figure("retried", len(retried))
    record.figure("dead-lettered", dead)
    record.figure("error", sorted({str(e.get("error")) for e in failed})[0])
    record.summarize(
        f"{len(commands)} malformed sources: {dead} dead-lettered at once, 0 retried "
        "(before: ports retried as transient, brackets a raw ValueError)"
    )
