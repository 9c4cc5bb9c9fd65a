"""RabbitMQ restarted while 500 commands are being published through the API.

The broker is a RabbitMQ node of the suite's own (never the machine's shared one). Eight
client threads POST 500 import_catalog commands, each for its own catalog (the suite's
RelTest plugin adapter makes any version cheaply), retrying a refused request the way a
client must (503 = "not queued, try again"). Meanwhile the node is stopped and started again.
A 202 means the broker confirmed the message: every command must end in its catalog, the
worker and the API must reconnect by themselves (same processes throughout).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.db.tables import Catalog
from syncd.tokens import create_token
from tests.reliability.harness import (
    PROCESS_TEST,
    ApiServer,
    command_env,
    queue_state,
    wait_consumers,
    wait_until,
    worker_process,
)
from tests.reliability.plugin import ADAPTER_NAME
from tests.reliability.private_services import PrivateRabbitMQ
from tests.reliability.readers import CATALOGS
from tests.reliability.results import CaseRecord

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(360)]

COMMANDS = 500
CLIENTS = 8
RESTART_AFTER = 150  # commands accepted before the broker goes down
DOWN_SECONDS = 2.0
PLUGIN = "tests.reliability.plugin"


def test_rabbitmq_restarted_while_publishing(
    private_mq: PrivateRabbitMQ,
    pg_url: str,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    record = reliability("rabbitmq_restart")
    amqp = private_mq.url()
    queue, env = command_env(pg_url, amqp, "rel_mq")
    engine = make_engine(pg_url)
    with session_scope(make_session_factory(engine)) as session:
        _, key = create_token(session, name="rel-mq", is_staff=True)
    api = ApiServer(env, logs / "api.log", module=PLUGIN)
    worker = worker_process(env, logs / "worker.log", threads=4, module=PLUGIN)
    statuses: Counter[str] = Counter()
    accepted: set[str] = set()
    lock = threading.Lock()
    down = threading.Event()
    restarted = threading.Event()
    timings: dict[str, float] = {}
    versions = [f"v{i:04d}" for i in range(COMMANDS)]

    def publish(version: str) -> None:
        """POST until the API says the command is queued (or was, and already ran)."""
        with httpx.Client(
            base_url=api.base_url, headers={"Authorization": f"Token {key}"}, timeout=60
        ) as http:
            for _ in range(600):
                if len(accepted) >= RESTART_AFTER:
                    # The rest go out once the broker is down, so that publishing and the
                    # outage overlap however long stopping the node takes on a busy machine.
                    down.wait(timeout=120)
                try:
                    r = http.post(
                        f"{CATALOGS}import_catalog/",
                        json={"name": ADAPTER_NAME, "version": version},
                    )
                    outcome = str(r.status_code)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with lock:
                    statuses[outcome] += 1
                if outcome == "202":
                    with lock:
                        accepted.add(version)
                    return
                if outcome == "400" and "already exists" in r.text:
                    # An earlier try was queued after all (its confirm was lost in the
                    # restart) and has run: that is this command, done.
                    with lock:
                        accepted.add(version)
                    return
                time.sleep(0.2)
        raise AssertionError(f"import of {version} never accepted")

    def restart_when_busy() -> None:
        wait_until(lambda: len(accepted) >= RESTART_AFTER, timeout=120, what="150 accepted")
        began = time.monotonic()
        private_mq.stop()
        timings["stop (s)"] = round(time.monotonic() - began, 1)
        down.set()
        time.sleep(DOWN_SECONDS)
        began = time.monotonic()
        private_mq.start()
        timings["start (s)"] = round(time.monotonic() - began, 1)
        restarted.set()

    try:
        api.start()
        worker.start()
        wait_consumers(amqp, queue, timeout=90)
        api_pid, worker_pid = api.process.pid, worker.pid
        started = time.monotonic()
        restarter = threading.Thread(target=restart_when_busy, daemon=True)
        restarter.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(publish, versions))
        publish_seconds = time.monotonic() - started
        restarter.join(timeout=120)
        assert restarted.is_set(), "the broker was not restarted during publishing"

        def done() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        select(func.count()).where(
                            Catalog.name == ADAPTER_NAME,
                            Catalog.last_successful_update.is_not(None),
                        )
                    ).scalar_one()
                )

        wait_until(lambda: done() >= COMMANDS, timeout=180, interval=1, what="500 catalogs")
        drained_seconds = time.monotonic() - started
        ready, _ = queue_state(amqp, queue)
        dead, _ = queue_state(amqp, f"{queue}.XQ")
        with engine.connect() as conn:
            made = set(
                conn.execute(select(Catalog.version).where(Catalog.name == ADAPTER_NAME)).scalars()
            )
        # The same API process answers after the restart: it reconnected by itself.
        after = httpx.post(
            f"{api.base_url}{CATALOGS}import_catalog/",
            json={"name": ADAPTER_NAME, "version": "after-restart"},
            headers={"Authorization": f"Token {key}"},
            timeout=30,
        )
        same_processes = api.process.pid == api_pid and worker.pid == worker_pid
        alive = api.process.alive() and worker.alive()
        received = len(worker.events("command_received"))
        reconnects = len(
            [e for e in worker.events() if "Restarting consumer" in str(e.get("event", ""))]
        )
    finally:
        worker.stop()
        api.stop()
        engine.dispose()

    record.try_(
        f"{COMMANDS} import_catalog commands POSTed by {CLIENTS} client threads; the RabbitMQ "
        f"node stopped (`rabbitmqctl stop`), left down {DOWN_SECONDS:g} s and started again after "
        f"{RESTART_AFTER} were accepted; the rest were published into the outage"
    )
    record.figure("commands", COMMANDS)
    record.figure("catalogs made", len(made & set(versions)))
    record.figure("lost", len(set(versions) - made))
    record.figure("HTTP outcomes", dict(statuses))
    record.figure("publishing took (s)", round(publish_seconds, 1))
    record.figure("all executed after (s)", round(drained_seconds, 1))
    record.figure("commands run (with redeliveries)", received)
    record.figure("worker consumer restarts", reconnects)
    record.figure(
        "broker stop / down / start (s)",
        f"{timings.get('stop (s)')} / {DOWN_SECONDS:g} / {timings.get('start (s)')}",
    )
    record.summarize(
        f"{COMMANDS} commands, {len(set(versions) - made)} lost; {statuses.get('503', 0)} "
        "requests refused (503) during the restart and retried; worker and API reconnected"
    )

    assert accepted == set(versions)
    assert set(versions) <= made, f"lost: {sorted(set(versions) - made)[:10]}"
    assert (ready, dead) == (0, 0), (ready, dead)
    assert alive and same_processes, "the API or the worker had to be restarted"
    assert after.status_code == 202, after.text
    assert statuses.get("503", 0) + sum(n for k, n in statuses.items() if not k.isdigit()) > 0, (
        "no request was refused: the restart did not overlap the publishing"
    )
    record.hold(
        "every command was executed (nothing lost); refused requests got 503 and were "
        "retried; the worker and the API reconnected by themselves, same processes"
    )
