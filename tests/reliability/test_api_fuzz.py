"""Schemathesis over the OpenAPI document: many examples per operation, no 500.

Every operation of /api/schema/ is fuzzed with valid (positive) and invalid (negative)
inputs, as a staff caller (so writes get past authentication and reach the handlers), against
a database holding real catalogs. The run is bounded by a time budget as well as by examples:
whatever budget is left is shared by the operations not fuzzed yet.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from adapters.base import load_adapters
from adapters.fetch import Fetcher
from syncd import service
from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.tokens import create_token
from tests.reliability.results import CaseRecord
from tests.support.fake_upstream import FakeUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(420)]

MAX_EXAMPLES = 120  # per operation and generation mode
# Seconds per operation and generation mode: the budget grows with the API (45 operations
# now), so each pair keeps room for the 20 requests the test asks of it.
SECONDS_PER_RUN = 2.0


@pytest.fixture
def fuzz_target(pg_url: str) -> Iterator[tuple[Any, str]]:
    """The app (in-process ASGI) over a database with EESSI and Spack sample catalogs."""
    from syncd.api.app import create_app

    with FakeUpstream("sample") as up:
        # Embedded queue (no broker URL): imports are accepted without filling a RabbitMQ
        # queue; discover asks the fake upstream, never the internet.
        config = up.settings(database_url=pg_url, discover_cache_seconds=0)
        engine = make_engine(pg_url)
        adapters = load_adapters(config)
        with Fetcher(config) as fetcher:
            for name in ("Spack", "EESSI"):
                service.import_catalog(engine, adapters, fetcher, name=name)
            with session_scope(make_session_factory(engine)) as session:
                _, key = create_token(session, name="fuzz", is_staff=True)
            app = create_app(config, engine=engine, adapters=adapters, fetcher=fetcher)
            try:
                yield app, key
            finally:
                engine.dispose()


def _fuzzer(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    deadline: float,
    statuses: Counter[int],
    calls: Counter[str],
    label: str,
) -> Callable[[], None]:
    """A hypothesis test of one operation in one generation mode, stopping at `deadline`."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        if time.monotonic() > deadline:
            return  # this operation's share of the budget is spent
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        calls[label] += 1
        checks = [not_a_server_error]
        if mode is GenerationMode.POSITIVE:
            checks.append(response_schema_conformance)
        case.validate_response(response, checks=checks)

    return fuzz


def test_schemathesis_finds_no_server_error(
    fuzz_target: tuple[Any, str], reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_schemathesis")
    app, key = fuzz_target
    schema = schemathesis.openapi.from_asgi("/api/schema/", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    headers = {"Authorization": f"Token {key}"}
    statuses: Counter[int] = Counter()
    calls: Counter[str] = Counter()
    failures: dict[str, str] = {}
    unsatisfiable: list[str] = []
    started = time.monotonic()
    runs = [(op, mode) for op in operations for mode in GenerationMode]
    budget = SECONDS_PER_RUN * len(runs)
    for index, (operation, mode) in enumerate(runs):
        left = budget - (time.monotonic() - started)
        if left <= 1:
            break
        share = left / (len(runs) - index)
        label = f"{operation.label} [{mode.value}]"
        deadline = time.monotonic() + share

        fuzz = _fuzzer(operation, mode, headers, deadline, statuses, calls, label)
        try:
            fuzz()
        except Unsatisfiable:
            # No invalid input exists for this operation (say, a path with only a uuid that
            # must still route): nothing to fuzz in negative mode.
            unsatisfiable.append(label)
        except Exception as exc:  # a failing example, already shrunk by hypothesis
            failures[label] = f"{type(exc).__name__}: {exc}"[:1500]
    seconds = time.monotonic() - started
    total = sum(calls.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    record.try_(
        f"{len(operations)} operations x positive and negative inputs, up to {MAX_EXAMPLES} "
        f"examples each within a {budget:.0f} s budget, as a staff caller, over real "
        "EESSI and Spack sample catalogs"
    )
    record.figure("requests", total)
    record.figure("operations", len(operations))
    record.figure("5xx answers", server_errors)
    record.figure("statuses", dict(sorted(statuses.items())))
    record.figure("seconds", round(seconds, 1))
    record.summarize(
        f"{total:,} requests over {len(operations)} operations in {seconds:.0f} s; "
        f"{server_errors} x 5xx; {len(failures)} failing operation/mode pairs"
    )
    record.figure("operation/mode pairs with no invalid input to make", len(unsatisfiable))
    if failures:
        record.figure("failing operations", sorted(failures))
        record.figure("first failure", next(iter(failures.values())))
    else:
        record.hold("no 5xx answer, every positive example's response matched the schema")
    assert total >= 20 * (len(runs) - len(unsatisfiable)), (
        f"only {total} requests in {seconds:.0f} s"
    )
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


# Inputs a generator rarely makes but people (and attackers) send: NUL bytes (PostgreSQL
# refuses them in text), huge or negative numbers, repeated parameters, odd dates, lone
# surrogates, numbers beyond float range, very long paths.
EDGE_QUERIES = [
    "{C}?name=a%00b",
    "{P}?query=%00",
    "{V}?version=%00",
    "{T}?target_name=%00",
    "{P}?catalog_uuid=%00",
    "{C}?page=100000000000000000000",
    "{C}?page=9223372036854775807",
    "{C}?page=-1",
    "{C}?page_size=-1",
    "{C}?page_size=99999999999999999999",
    "{C}?o=" + ",".join(["name"] * 5000),
    "{C}?" + "&".join(["field=name"] * 5000),
    "{C}?o=" + "-" * 1000,
    "{V}?release_date_after=99999-01-01",
    "{V}?release_date_after=0000-00-00",
    "{C}%00/",
    "{C}" + "a" * 10_000 + "/",
    "{P}?name=" + "%F0%9F%92%A9" * 2000,
    "{P}?name=%ED%A0%80",
]
EDGE_BODIES: list[dict[str, Any]] = [
    {"name": "a\x00b", "version": "1"},
    {"name": "x", "version": "2", "description": "a\x00b"},
    {"name": "x", "version": "3", "metadata": {"a\x00": 1}},
    {"name": "x", "version": "4", "metadata": {"a": "\x00"}},
    {"name": "x", "version": "5", "source_url": "http://a\x00b/"},
    {"name": "x", "version": "6", "update_errors": "\ud800"},
    {"name": "x", "version": "7", "auto_update_enabled": "maybe"},
    {"name": "x" * 101, "version": "8"},
    {"name": "x", "version": "9", "catalog_type": "nope"},
]
RAW_BODIES = [
    b'{"name": "x", "version": "10", "metadata": 1' + b"0" * 400 + b"}",
    b'{"name": "x", "version": "11", "metadata": 1e400}',
    b'{"name": "x", "version": "12", "metadata": NaN}',
    b'{"name": "x", "name": "y", "version": "13"}',
]


def test_edge_inputs_get_no_server_error(
    fuzz_target: tuple[Any, str], reliability: Callable[[str], CaseRecord]
) -> None:
    from fastapi.testclient import TestClient

    record = reliability("api_edge_inputs")
    app, key = fuzz_target
    base = "/api/marketplace-software-"
    names = {
        "C": f"{base}catalogs/",
        "P": f"{base}packages/",
        "V": f"{base}versions/",
        "T": f"{base}targets/",
    }
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Token {key}"
        requests: list[tuple[str, str, bytes | None]] = [
            ("GET", q.format(**names), None) for q in EDGE_QUERIES
        ]
        requests += [
            ("POST", path, json.dumps({"catalog_type": "source_package", **b}).encode())
            for b in EDGE_BODIES
            for path in (names["C"], f"{names['C']}import_catalog/")
        ]
        requests += [("POST", names["C"], raw) for raw in RAW_BODIES]
        for method, path, body in requests:
            r = client.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            statuses[r.status_code] += 1
            if r.status_code >= 500:
                server_errors.append(f"{method} {path[:80]} {body!r:.80}: {r.status_code}")
    record.try_(
        f"{len(requests)} hand-picked requests: NUL bytes, huge/negative numbers, 5,000 "
        "repeated parameters, impossible dates, lone surrogates, numbers beyond float range, "
        "duplicate JSON keys, 10 kB paths"
    )
    record.figure("requests", len(requests))
    record.figure("statuses", dict(sorted(statuses.items())))
    record.summarize(f"{len(requests)} edge-case requests, {len(server_errors)} x 5xx")
    assert not server_errors, server_errors
    record.hold("every one answered 2xx or 4xx")
