"""Malformed AMQP messages: dead-lettered with a reason, and the worker goes on working.

The messages are published with plain pika, as a buggy or hostile producer would, straight
onto the worker's queue. Each must end in the dead-letter queue `<queue>.XQ` with one log
line that says why; the same worker process must then still run a valid command.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.reliability.catalogs import catalog_row
from tests.reliability.harness import (
    command_env,
    queue_state,
    running,
    wait_consumers,
    wait_until,
    worker_process,
)
from tests.reliability.results import CaseRecord

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.timeout(240)]


def _envelope(queue: str, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "queue_name": queue,
        "actor_name": "update_catalog",
        "args": [],
        "kwargs": {"catalog_uuid": uuid.uuid4().hex},
        "options": {},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": int(time.time() * 1000),
    }
    fields.update(overrides)
    return fields


def _malformed(queue: str) -> list[tuple[str, bytes, str]]:
    """(label, body, a word the rejection reason must contain)."""

    def env(**o: Any) -> bytes:
        return json.dumps(_envelope(queue, **o)).encode()

    no_kwargs = _envelope(queue)
    del no_kwargs["kwargs"]
    return [
        ("garbage bytes", bytes(range(256)) * 4, "UTF-8"),
        ("empty body", b"", "JSON"),
        ("not JSON", b"import os; os.system('rm -rf /')", "JSON"),
        ("JSON array", b"[1, 2, 3]", "object"),
        ("NaN constant", b'{"queue_name": NaN}', "JSON"),
        ("wrong envelope", json.dumps({"command": "import", "catalog": "EESSI"}).encode(), "lacks"),
        ("envelope without kwargs", json.dumps(no_kwargs).encode(), "kwargs"),
        ("extra envelope field", env(callback="os.system"), "unknown fields"),
        ("unknown actor", env(actor_name="shell_exec", kwargs={}), "unknown actor"),
        ("actor name not a string", env(actor_name=["import_catalog"]), "actor_name"),
        ("wrong kwargs", env(actor_name="import_catalog", kwargs={"nme": "EESSI"}), "kwargs"),
        ("kwarg of wrong type", env(kwargs={"catalog_uuid": 12345}), "catalog_uuid"),
        ("not a uuid", env(kwargs={"catalog_uuid": "../../etc/passwd"}), "uuid"),
        ("positional args", env(args=["x"]), "args"),
        ("retry policy override", env(options={"max_retries": 10**6}), "max_retries"),
        ("foreign queue_name", env(queue_name="other_queue"), "queue_name"),
        ("timestamp in seconds", env(message_timestamp=int(time.time())), "milliseconds"),
        (
            "huge payload (8 MB)",
            env(actor_name="import_catalog", kwargs={"name": "x" * 8_000_000}),
            "limit",
        ),
    ]


def _publish(amqp_url: str, queue: str, bodies: list[bytes]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(
                "", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True
            )
    finally:
        conn.close()


def test_malformed_messages_are_dead_lettered_and_worker_survives(
    pg_url: str,
    amqp_url: str,
    upstream_dir: Path,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    record = reliability("malformed_messages")
    queue, env = command_env(pg_url, amqp_url, "rel_bad")
    worker = worker_process(env, logs / "worker.log", threads=2)
    cases = _malformed(queue)
    with running(worker):
        wait_consumers(amqp_url, queue, timeout=90)
        pid = worker.pid
        _publish(amqp_url, queue, [body for _, body, _ in cases])
        wait_until(
            lambda: len(worker.events("message_rejected")) >= len(cases),
            timeout=60,
            what=f"{len(cases)} message_rejected log lines",
        )
        # Well-formed commands that cannot succeed: the actor dead-letters them at once
        # (permanent failures), with a command_failed line saying why.
        doomed = [
            ("update of an unknown catalog", _envelope(queue), "No catalog"),
            (
                "import through no adapter",
                _envelope(queue, actor_name="import_catalog", kwargs={"name": "NoSuchAdapter"}),
                "No loader configuration",
            ),
        ]
        _publish(amqp_url, queue, [json.dumps(fields).encode() for _, fields, _ in doomed])
        failed = worker.wait_event("command_failed", timeout=60, count=len(doomed))
        # The same worker process then runs a valid command sent the same way.
        source = (upstream_dir / "spack" / "repology.upstream-2025-11-26.first5.json").as_uri()
        good = _envelope(
            queue, actor_name="import_catalog", kwargs={"name": "Spack", "source": source}
        )
        _publish(amqp_url, queue, [json.dumps(good).encode()])
        from syncd.db.engine import make_engine

        engine = make_engine(pg_url)
        try:
            row = wait_until(
                lambda: (
                    (r := catalog_row(engine, name="Spack")) and r["last_successful_update"] and r
                ),
                timeout=90,
                what="the valid import after the malformed messages",
            )
        finally:
            engine.dispose()
        assert row["package_count"] == 5, row
        assert worker.alive() and worker.pid == pid, "the worker process was replaced or died"
        dead = wait_until(
            lambda: (
                (n := queue_state(amqp_url, f"{queue}.XQ")[0]) >= len(cases) + len(doomed) and n
            ),
            timeout=30,
            what="every bad message in the dead-letter queue",
        )
        ready, consumers = queue_state(amqp_url, queue)

    rejections = worker.events("message_rejected")
    assert dead == len(cases) + len(doomed), f"{dead} dead letters for {len(cases)} + {len(doomed)}"
    # Two worker threads: match the failures to the commands by actor, not by order.
    by_command = {str(e.get("command")): e for e in failed}
    for label, fields, words in doomed:
        event = by_command.get(fields["actor_name"], {})
        assert words in str(event.get("error")), (label, event)
        assert event.get("will_retry") is False, (label, event)
    assert ready == 0 and consumers >= 1
    assert len(rejections) == len(cases), [r.get("reason") for r in rejections]
    # One worker process, one consumer: deliveries are decoded, and rejected, in publish
    # order, so the n-th log line is about the n-th message.
    reasons = [str(r.get("reason", "")) for r in rejections]
    unmatched = [
        (label, reason)
        for (label, _, word), reason in zip(cases, reasons, strict=True)
        if word.lower() not in reason.lower()
    ]
    assert not unmatched, f"reasons that do not say what is wrong: {unmatched}"
    record.try_(", ".join(label for label, _, _ in cases))
    record.try_(
        "well-formed commands that cannot succeed: " + ", ".join(label for label, _, _ in doomed)
    )
    record.hold(
        "each landed in the dead-letter queue with a message_rejected log line giving the "
        "reason; the doomed commands were dead-lettered at once (no retries) with the reason "
        "in update_errors/log; the same worker process then ran a valid import"
    )
    record.figure("malformed messages", len(cases))
    record.figure("doomed commands", len(doomed))
    record.figure("dead-lettered", dead)
    record.figure("worker restarts", 0)
    record.summarize(
        f"{len(cases)} malformed + {len(doomed)} doomed messages, {dead} dead-lettered with "
        "a reason; the worker never died"
    )
    record.figure("largest body", "8 MB")
