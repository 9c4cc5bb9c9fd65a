"""The API's publisher connection closed by RabbitMQ: the next POST reconnects, quietly.

RabbitMQ drops an idle connection whose heartbeats it missed (or an operator closes it); the
API only notices at its next publish, which fails on the dead socket and is retried on a new
connection. That POST gets its 202, so pika's socket errors and tracebacks on the way are
not errors of the service: one INFO line says the publisher reconnected. The connections
are closed with `rabbitmqctl close_all_connections` on a vhost of the test's own.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.tokens import create_token
from tests.reliability.harness import PROCESS_TEST, ApiServer, command_env, drain_queue
from tests.reliability.plugin import ADAPTER_NAME
from tests.reliability.readers import CATALOGS
from tests.reliability.results import CaseRecord
from tests.support.services import rabbitmq_vhost

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(120)]

PLUGIN = "tests.reliability.plugin"


def _connections(vhost: str) -> int:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "-p", vhost, "name"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return len([line for line in out.splitlines() if line.strip() and line != "name"])


def _close_all(vhost: str) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "reliability test"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_a_publisher_connection_closed_by_rabbitmq_reconnects_without_errors(
    pg_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("publisher_reconnect")
    engine = make_engine(pg_url)
    with session_scope(make_session_factory(engine)) as session:
        _, key = create_token(session, name="rel-reconnect", is_staff=True)
    engine.dispose()
    with rabbitmq_vhost("rel_reconnect") as amqp:
        vhost = amqp.rsplit("/", 1)[1]
        queue, env = command_env(pg_url, amqp, "rel_reconnect")
        api = ApiServer(env, logs / "api.log", module=PLUGIN)
        try:
            api.start()
            headers = {"Authorization": f"Token {key}"}
            with httpx.Client(base_url=api.base_url, headers=headers, timeout=60) as http:
                body = {"name": ADAPTER_NAME, "version": "before"}
                first = http.post(f"{CATALOGS}import_catalog/", json=body)
                assert first.status_code == 202, first.text
                closed = _connections(vhost)
                offset = len(api.process.events())
                _close_all(vhost)
                body = {"name": ADAPTER_NAME, "version": "after"}
                after = http.post(f"{CATALOGS}import_catalog/", json=body)
            queued = [b for _p, b in drain_queue(amqp, queue)]
            events = api.process.events()[offset:]
        finally:
            api.stop()

    errors = [e for e in events if e.get("level") in ("error", "critical")]
    reconnects = [e for e in events if e.get("event") == "publisher_reconnected"]
    record.try_(
        "syncd api published one import; RabbitMQ then closed all its connections "
        "(rabbitmqctl close_all_connections) and the next import_catalog POST was sent"
    )
    record.figure("connections closed", closed)
    record.figure("POST after the close", after.status_code)
    record.figure("ERROR log lines after the close", len(errors))
    record.figure("publisher_reconnected lines", len(reconnects))
    record.summarize(
        f"POST after RabbitMQ closed the connection: {after.status_code}; "
        f"{len(errors)} ERROR log lines (before: 1 to 3 with pika tracebacks), "
        f"{len(reconnects)} INFO reconnect line"
    )
    assert closed >= 1, "the API had no connection to close"
    assert after.status_code == 202, after.text
    assert len(queued) == 2, queued
    assert errors == [], errors
    assert len(reconnects) == 1, reconnects
    assert reconnects[0]["level"] == "info", reconnects
    record.hold(
        "the POST got 202 and both commands are in the queue; no ERROR line was logged; "
        "one INFO publisher_reconnected line says what happened"
    )
