"""Hostile messages against the worker's /metrics and its delay queue.

A lone surrogate in a kwarg or in actor_name was dead-lettered, but its text became a metric
label that the exposition cannot encode: /metrics answered 500 until the worker restarted.
Unknown actors and arbitrary versions each made a series of their own. And a message on the
delay queue whose eta lies far ahead was held unacknowledged for ever (RabbitMQ takes it back
every consumer_timeout and redelivers it). All are published here with plain pika onto the
worker's queues; a real worker must dead-letter each with a reason and keep /metrics small
and working.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.harness import (
    command_env,
    queue_state,
    running,
    wait_consumers,
    wait_until,
    worker_process,
)
from tests.reliability.private_services import free_port
from tests.reliability.results import CaseRecord
from tests.reliability.test_malformed_messages import _envelope, _publish

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.timeout(240)]

UNKNOWN_ACTORS = 100
ARBITRARY_VERSIONS = 100


def _body(queue: str, actor: str, kwargs: dict[str, Any], **options: Any) -> bytes:
    fields = _envelope(queue, actor_name=actor, kwargs=kwargs, options=options)
    # json.dumps escapes a lone surrogate as \ud800: valid JSON, as a producer would send it.
    return json.dumps(fields).encode()


def _series(text: str, metric: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(metric + "{")]


def test_bad_messages_keep_metrics_working_and_bounded(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("message_metrics")
    port = free_port()
    queue, env = command_env(pg_url, amqp_url, "rel_labels", metrics_port=port)
    worker = worker_process(env, logs / "worker.log")
    day_ms = 24 * 3600 * 1000
    rejected = [
        (
            "lone surrogate in version",
            queue,
            "import_catalog",
            {"name": "EESSI", "version": "\ud800x"},
            {},
        ),
        ("lone surrogate in actor_name", queue, "\ud800", {}, {}),
        (
            "eta one day ahead on the delay queue",
            f"{queue}.DQ",
            "update_catalog",
            {"catalog_uuid": uuid.uuid4().hex},
            {"eta": int(time.time() * 1000) + day_ms},
        ),
    ]
    unknown_actors = [_body(queue, f"actor_{i}", {}) for i in range(UNKNOWN_ACTORS)]
    # Well-formed imports through no adapter: each fails in the worker (no catalog row).
    arbitrary_versions = [
        _body(queue, "import_catalog", {"name": "NoSuchAdapter", "version": f"v{i}"})
        for i in range(ARBITRARY_VERSIONS)
    ]
    with running(worker):
        wait_consumers(amqp_url, queue, timeout=90)
        wait_consumers(amqp_url, f"{queue}.DQ", timeout=30)
        for _label, target, actor, kwargs, options in rejected:
            _publish(amqp_url, target, [_body(target, actor, kwargs, **options)])
        _publish(amqp_url, queue, unknown_actors + arbitrary_versions)
        expected_rejections = len(rejected) + UNKNOWN_ACTORS
        dead = wait_until(
            lambda: (
                (n := queue_state(amqp_url, f"{queue}.XQ")[0])
                >= expected_rejections + ARBITRARY_VERSIONS
                and n
            ),
            timeout=60,
            what="every bad message in the dead-letter queue",
        )
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        rejections = worker.events("message_rejected")
        alive = worker.alive()

    reasons = {str(r.get("reason")) for r in rejections[: len(rejected)]}
    failed = _series(metrics.text, "syncd_commands_failed_total")
    received = _series(metrics.text, "syncd_commands_received_total")
    record.try_(
        ", ".join(label for label, *_ in rejected)
        + f"; {UNKNOWN_ACTORS} messages with distinct unknown actors; {ARBITRARY_VERSIONS} "
        "imports through no adapter with distinct versions; then the worker's /metrics"
    )
    record.figure("messages", len(rejected) + UNKNOWN_ACTORS + ARBITRARY_VERSIONS)
    record.figure("dead-lettered", dead)
    record.figure("/metrics status", metrics.status_code)
    record.figure("syncd_commands_failed_total series", len(failed))
    record.figure("syncd_commands_received_total series", len(received))
    record.summarize(
        f"{dead} bad messages dead-lettered; /metrics answered {metrics.status_code} with "
        f"{len(failed)} failed-command series (before: 500 after one lone surrogate; "
        "without one, 200 series for the 200 unknown-actor and arbitrary-version messages)"
    )
    assert alive, worker.tail()
    assert dead == expected_rejections + ARBITRARY_VERSIONS
    assert len(rejections) == expected_rejections, [r.get("reason") for r in rejections]
    assert any("surrogate" in r for r in reasons), reasons
    assert any("unknown actor" in r for r in reasons), reasons
    assert any("'eta'" in r and "in the future" in r for r in reasons), reasons
    record.hold(
        "each went to the dead-letter queue with a message_rejected line giving the reason "
        "(lone surrogate, unknown actor, eta beyond the longest backoff)"
    )
    assert metrics.status_code == 200, metrics.text[-2000:]
    # One series per (actor, catalog, error, will_retry) a fixed set allows: not per message.
    assert 1 <= len(failed) <= 4, failed
    assert 1 <= len(received) <= 2, received
    assert all("\\ud800" not in line and "actor_" not in line for line in failed), failed
    assert any('actor="invalid"' in line for line in failed), failed
    record.hold(
        '/metrics answered 200 afterwards; unknown actors are labelled actor="invalid" and '
        'failures without a catalog row catalog="", so the bad messages made at most 4 '
        "series, not one each"
    )
