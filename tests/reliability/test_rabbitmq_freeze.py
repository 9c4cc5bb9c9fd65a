"""RabbitMQ frozen (SIGSTOP) while the API publishes: answers within the publish deadline.

A stopped broker process, like a network partition that keeps TCP open, never closes the
connection: without a deadline the API's publish waited for the confirm until the heartbeat
gave up (about 85 s), far longer than clients and load balancers wait. The broker here is a
RabbitMQ node of the suite's own (never the machine's shared one); its Erlang VM is stopped
with SIGSTOP and always continued with SIGCONT, however the test ends. The API runs with
SYNCD_PUBLISH_TIMEOUT_SECONDS=2. No worker runs: what was queued stays in the queue to be
counted.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.tokens import create_token
from tests.reliability.harness import PROCESS_TEST, ApiServer, command_env, drain_queue
from tests.reliability.plugin import ADAPTER_NAME
from tests.reliability.private_services import PrivateRabbitMQ
from tests.reliability.readers import CATALOGS
from tests.reliability.results import CaseRecord

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(240)]

DEADLINE = 2.0
# The bound under test is the deadline; the slack only absorbs a busy, shared 2-core machine.
SLACK = 10.0  # against the ~85 s a frozen broker used to cost
PLUGIN = "tests.reliability.plugin"


def _broker_pid(node: PrivateRabbitMQ) -> int:
    """The OS pid of the node's Erlang VM (what SIGSTOP freezes; epmd is shared, left alone)."""
    pid = int(node.pid_file.read_text().strip())
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    assert comm.startswith("beam"), f"pid {pid} of the node is {comm!r}, not the Erlang VM"
    return pid


def _post_import(http: httpx.Client, version: str) -> tuple[int, str, float]:
    """(status, detail or body, seconds) of one import_catalog POST."""
    started = time.monotonic()
    r = http.post(f"{CATALOGS}import_catalog/", json={"name": ADAPTER_NAME, "version": version})
    seconds = time.monotonic() - started
    try:
        body = r.json()
    except ValueError:
        body = r.text
    detail = body.get("detail", "") if isinstance(body, dict) else str(body)
    return r.status_code, str(detail), seconds


def _queued_versions(amqp: str, queue: str) -> list[str]:
    return [
        str(json.loads(body)["kwargs"].get("version")) for _props, body in drain_queue(amqp, queue)
    ]


def test_frozen_rabbitmq_gets_503_within_the_deadline(
    private_mq: PrivateRabbitMQ,
    pg_url: str,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    record = reliability("rabbitmq_freeze")
    amqp = private_mq.url()
    queue, env = command_env(pg_url, amqp, "rel_freeze", publish_timeout_seconds=DEADLINE)
    engine = make_engine(pg_url)
    with session_scope(make_session_factory(engine)) as session:
        _, key = create_token(session, name="rel-freeze", is_staff=True)
    engine.dispose()
    api = ApiServer(env, logs / "api.log", module=PLUGIN)
    frozen: list[tuple[int, str, float]] = []
    try:
        api.start()
        headers = {"Authorization": f"Token {key}"}
        # The client waits far longer than the deadline: the API must answer first.
        with httpx.Client(base_url=api.base_url, headers=headers, timeout=120) as http:
            warm = _post_import(http, "before")
            pid = _broker_pid(private_mq)
            os.kill(pid, signal.SIGSTOP)
            try:
                frozen.append(_post_import(http, "frozen-1"))
                frozen.append(_post_import(http, "frozen-2"))
            finally:
                os.kill(pid, signal.SIGCONT)
            after = _post_import(http, "after")
        queued = _queued_versions(amqp, queue)
        api_alive = api.process.alive()
    finally:
        api.stop()

    record.try_(
        f"API with SYNCD_PUBLISH_TIMEOUT_SECONDS={DEADLINE:g} on a private RabbitMQ node; "
        "one import_catalog POST accepted, then the node's Erlang VM stopped with SIGSTOP and "
        "two POSTs sent while it was frozen, then SIGCONT and one more POST"
    )
    record.figure("deadline (s)", DEADLINE)
    record.figure("before freeze", f"{warm[0]} in {warm[2]:.2f} s")
    for i, (status, _detail, seconds) in enumerate(frozen, 1):
        record.figure(f"frozen POST {i}", f"{status} in {seconds:.2f} s")
    record.figure("after SIGCONT", f"{after[0]} in {after[2]:.2f} s")
    record.figure("queued", queued)
    slowest = max((seconds for _s, _d, seconds in frozen), default=0.0)
    record.summarize(
        f"POSTs into the frozen broker answered 503 in at most {slowest:.1f} s "
        f"(deadline {DEADLINE:g} s; about 85 s before); the next POST after SIGCONT got "
        f"{after[0]}"
    )

    assert warm[0] == 202, warm
    assert len(frozen) == 2
    for status, detail, seconds in frozen:
        assert status == 503, (status, detail)
        assert f"RabbitMQ did not confirm import_catalog on queue {queue!r} within 2 s" in detail
        assert "may or may not have been queued" in detail
        assert seconds <= DEADLINE + SLACK, seconds
    record.hold(
        f"each POST while the broker was frozen answered 503 within {DEADLINE:g} s + "
        f"{SLACK:g} s slack, saying RabbitMQ did not confirm and that the command may or may "
        "not have been queued; the second did not wait behind the first"
    )
    assert after[0] == 202, after
    assert after[2] <= 30, after
    assert {"before", "after"} <= set(queued), queued
    assert api_alive, "the API process died"
    record.hold(
        "after SIGCONT the same API process accepted the next POST (the timed-out connection "
        "was not reused) and its command is in the queue"
    )
