"""What the costliest anonymous requests cost the database, through a real `syncd api`.

Every text filter the API publishes is capped (a longer value is a 400 naming it), `o` takes
at most 10 terms, and a statement running past SYNCD_API_STATEMENT_TIMEOUT_MS is cancelled
in PostgreSQL (503), also when the client has already hung up. The catalog is built so that
a filter at the cap costs seconds on a few thousand rows (tests/support/costly_catalog.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from syncd.db.engine import make_engine
from syncd.db.migrate import upgrade
from tests.reliability.harness import ApiServer, running, syncd_env, wait_until
from tests.reliability.results import CaseRecord
from tests.support.costly_catalog import costly_catalog, worst_filter
from tests.support.services import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

TIMEOUT_MS = 200
ROWS = 4000
LISTS = {
    "catalogs": "/api/marketplace-software-catalogs/",
    "packages": "/api/marketplace-software-packages/",
    "versions": "/api/marketplace-software-versions/",
    "targets": "/api/marketplace-software-targets/",
}
# Figures of the code before the caps and the limit (commit f2e2114), measured by hand through
# `syncd api` on PostgreSQL with 200,000 EESSI-like targets (a 90-character location each).
BEFORE = [
    {"request": "targets ?path= 2,000 characters", "status": 200, "seconds": 13.6},
    {"request": "targets ?path= 20,000 characters", "status": "client gave up", "seconds": 120},
    {"request": "packages ?query= 2,000 characters", "status": 200, "seconds": 3.6},
    {"request": "targets ?o= 510 terms", "status": 200, "seconds": 1.0},
]
# The same requests after the change, same catalog, default limit (5,000 ms).
AFTER_BY_HAND = [
    {"request": "targets ?path= 2,000 or 20,000 characters", "status": 400, "seconds": 0.2},
    {"request": "targets ?path= 200 characters (the cap)", "status": 200, "seconds": 3.0},
    {"request": "packages ?query= 200 characters (the cap)", "status": 200, "seconds": 0.6},
    {"request": "targets ?o= 510 terms", "status": 400, "seconds": 0.2},
]
BEFORE_NOTE = (
    "the 20,000-character statement still ran in PostgreSQL (with 2 parallel workers) after "
    "the client had given up at 120 s, until cancelled by hand"
)


@dataclass
class Api:
    url: str
    db_name: str
    server: ApiServer


@pytest.fixture(scope="module")
def api(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    logs = tmp_path_factory.mktemp("api_query_cost")
    with postgres_database("syncd_rel_cost") as db_url:
        upgrade(db_url)
        engine = make_engine(db_url)
        try:
            costly_catalog(engine, rows=ROWS)
        finally:
            engine.dispose()
        env = syncd_env(
            database_url=db_url,
            broker_url=amqp_url,
            queue_name="syncd_rel_cost",
            api_statement_timeout_ms=TIMEOUT_MS,
        )
        server = ApiServer(env, logs / "api.log")
        with running(server.process):
            server.wait_ready()
            yield Api(server.base_url, str(make_url(db_url).database), server)


def _filters(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, parameter, schema option) of every filter of every GET route."""
    for path, operations in schema["paths"].items():
        for param in operations.get("get", {}).get("parameters", []):
            if param["in"] != "query" or param["name"] in {"o", "field"}:
                continue
            for option in param["schema"].get("anyOf", [param["schema"]]):
                yield path, param["name"], option


def _text_filters(schema: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """(path, parameter, maxLength) of every free-text query parameter of every GET route,
    the values of a multi-valued filter included."""
    found = []
    for path, name, option in _filters(schema):
        text = option.get("items", {}) if option.get("type") == "array" else option
        if text.get("type") == "string" and "format" not in text:
            found.append((path, name, text.get("maxLength")))
    return found


def _list_filters(schema: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """(path, parameter, maxItems) of every multi-valued filter (repeated keys)."""
    return [
        (path, name, option.get("maxItems"))
        for path, name, option in _filters(schema)
        if option.get("type") == "array"
    ]


def _active_statements(db_name: str) -> int:
    """Statements running in the test's database, other than this query."""
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={db_name}") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            (db_name,),
        ).fetchone()
    return int(row[0]) if row else 0


def _timeouts_counted(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("syncd_api_statement_timeouts_total "):
            return float(line.split()[1])
    raise AssertionError("syncd_api_statement_timeouts_total is not exported")


def test_no_anonymous_request_costs_more_than_the_limit(
    api: Api, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_query_cost")
    message = f"The query took longer than {TIMEOUT_MS} ms and was cancelled; narrow the filters."
    with httpx.Client(base_url=api.url, timeout=20) as http:
        # 1. Every free-text filter the API publishes is capped, and past the cap refused.
        document = http.get("/api/schema/").json()
        filters = _text_filters(document)
        uncapped = [(path, name) for path, name, cap in filters if cap is None]
        assert not uncapped, f"text filters without a length cap: {uncapped}"
        for path, name, cap in filters:
            assert cap is not None
            r = http.get(path, params={name: "a" * 2000})
            assert r.status_code == 400, (path, name, r.status_code, r.text[:200])
            assert r.json() == {
                name: [f"Ensure this value has at most {cap} characters (it has 2000)."]
            }
        # 1b. So is the number of values of a multi-valued filter.
        lists = _list_filters(document)
        assert lists and all(cap is not None for _path, _name, cap in lists), lists
        for path, name, cap in lists:
            assert cap is not None
            r = http.get(path, params=[(name, f"v{i}") for i in range(cap + 1)])
            assert r.status_code == 400, (path, name, r.status_code, r.text[:200])
            assert r.json() == {name: [f"Ensure this field has no more than {cap} elements."]}
        # 2. Many ordering terms: refused before any SQL.
        for path in LISTS.values():
            r = http.get(path, params={"o": ",".join(["created"] * 510)})
            assert r.status_code == 400, (path, r.text[:200])
            assert r.json() == {"o": ["Ensure this field has no more than 10 elements."]}
        # 3. The worst values the caps let through: cancelled at the limit.
        counted = _timeouts_counted(http)
        cap = filters[0][2] or 0
        worst = {
            "targets ?path= at the cap": (LISTS["targets"], {"path": worst_filter(cap)}),
            "packages ?query= at the cap": (LISTS["packages"], {"query": worst_filter(cap)}),
            "packages ?description= at the cap, 10 o terms": (
                LISTS["packages"],
                {"description": worst_filter(cap), "o": ",".join(["-created", "name"] * 5)},
            ),
        }
        after = []
        for label, (path, params) in worst.items():
            started = time.monotonic()
            r = http.get(path, params=params)
            seconds = round(time.monotonic() - started, 3)
            after.append({"request": label, "status": r.status_code, "seconds": seconds})
            assert r.status_code == 503, (label, r.status_code, r.text[:200])
            assert r.json() == {"detail": message}
            assert r.headers.get("Retry-After")
        assert _active_statements(api.db_name) == 0
        # 4. A client that hangs up: the database stops at the limit all the same.
        hung_up = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            http.get(LISTS["targets"], params={"path": worst_filter(cap - 1)}, timeout=0.05)
        wait_until(
            lambda: _timeouts_counted(http) >= counted + len(worst) + 1,
            timeout=30,
            what="the hung-up request's statement to be cancelled",
        )
        wait_until(lambda: _active_statements(api.db_name) == 0, timeout=30, what="idle database")
        outlived = round(time.monotonic() - hung_up, 3)
        assert _timeouts_counted(http) == counted + len(worst) + 1
    assert api.server.process.alive()

    worst_after = max(row["seconds"] for row in after)
    record.try_(
        f"{len(filters)} text filters (every free-text query parameter the OpenAPI document "
        f"publishes) with 2,000 characters; {len(lists)} multi-valued filters with one value "
        f"past their cap; `o` with 510 terms on the {len(LISTS)} lists"
    )
    record.try_(
        f"the worst values the caps let through on {ROWS:,} packages and targets whose text is "
        f"1,990 characters (a filter of 'a'x{cap - 1}+'b' almost matches everywhere), with "
        f"SYNCD_API_STATEMENT_TIMEOUT_MS={TIMEOUT_MS}; and one such request whose client hung "
        "up after 50 ms"
    )
    record.hold(
        "every text filter has a cap and past it answers 400 in Django's words, naming the "
        "parameter; so does every multi-valued filter past its number of values; 11+ `o` "
        "terms answer 400"
    )
    record.hold(
        f"each worst request was cancelled in PostgreSQL at the limit and answered 503 "
        f"({message!r}); the hung-up client's statement was cancelled too; "
        "syncd_api_statement_timeouts_total counted each; nothing kept running"
    )
    record.figure("text filters capped", len(filters))
    record.figure("multi-valued filters capped", len(lists))
    record.figure("statement limit (ms)", TIMEOUT_MS)
    record.figure("worst anonymous request after (s)", worst_after)
    record.figure("hung-up request: database busy after the client left (s)", outlived)
    record.figure("after: the worst requests the caps let through", after)
    record.figure("before (f2e2114, 200,000 targets, by hand)", BEFORE)
    record.figure("before: after the client hung up", BEFORE_NOTE)
    record.figure("after (200,000 targets, by hand, 5,000 ms limit)", AFTER_BY_HAND)
    record.summarize(
        f"worst anonymous request: before 13.6 s (2,000-char path; 20,000 chars: > 120 s, "
        f"kept running after the client left), after {worst_after} s with a "
        f"{TIMEOUT_MS} ms limit (503); over-cap filters and 11+ `o` terms: 400"
    )
