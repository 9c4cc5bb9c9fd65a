"""Two real `syncd scheduler` processes against one PostgreSQL database and one RabbitMQ
vhost, ticking every second: each due catalog is enqueued once, whoever leads, and not
again while no worker has started it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from syncd.db.engine import make_engine
from tests.integration.scheduler.helpers import add_catalog, drain, tick_rows

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq]

SYNCD = [sys.executable, "-m", "syncd.cli", "scheduler"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def queue_name() -> str:
    return f"sched_{secrets.token_hex(4)}"


@pytest.fixture
def catalogs(pg_engine: Engine) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "never": add_catalog(pg_engine, "EESSI", "2023.06"),
        "stale": add_catalog(
            pg_engine, "Spack", "2026.01.01", last_attempt=now - timedelta(days=2)
        ),
        "disabled": add_catalog(pg_engine, "EESSI", "2025.06", enabled=False),
        "recent": add_catalog(pg_engine, "Other", "1", last_attempt=now),
    }


class Schedulers:
    """`syncd scheduler` subprocesses; every one is stopped at the end of the test."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.folder / f"scheduler-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(SYNCD, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def by_pid(self, pid: int) -> subprocess.Popen[bytes]:
        return next(p for p in self.procs if p.pid == pid)

    def stop_all(self) -> list[int | None]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=20))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                codes.append(None)
        return codes

    def tick_events(self) -> list[dict[str, Any]]:
        events = []
        for path in sorted(self.folder.glob("scheduler-*.log")):
            for line in path.read_text().splitlines():
                if line.startswith("{"):
                    event = json.loads(line)
                    if event.get("event") == "scheduler_tick":
                        events.append(event)
        return events

    def output(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.folder.glob("scheduler-*.log")))


@pytest.fixture
def schedulers(pg_url: str, amqp_url: str, queue_name: str, tmp_path: Path) -> Iterator[Schedulers]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env.update(
        SYNCD_DATABASE_URL=pg_url,
        SYNCD_BROKER_URL=amqp_url,
        SYNCD_QUEUE_NAME=queue_name,
        SYNCD_TICK_SECONDS="1",
        SYNCD_REFRESH_INTERVAL_SECONDS="3600",
        SYNCD_LOG_FORMAT="json",
        SYNCD_LOG_LEVEL="INFO",
    )
    group = Schedulers(env, tmp_path)
    yield group
    group.stop_all()


def claimer_pid(row: dict[str, Any]) -> int:
    return int(row["claimed_by"].rsplit(":", 1)[1])


def test_two_replicas_enqueue_each_due_catalog_once(
    pg_engine: Engine,
    schedulers: Schedulers,
    catalogs: dict[str, str],
    amqp_url: str,
    queue_name: str,
) -> None:
    schedulers.start()
    schedulers.start()
    wait_for(lambda: len(tick_rows(pg_engine)) >= 5, 90, "five ticks")
    assert schedulers.stop_all() == [0, 0], schedulers.output()

    ticks = tick_rows(pg_engine)
    # One leader claimed every tick; the first enqueued the two due catalogs, and with no
    # worker consuming, the later ones found those updates still waiting.
    assert len({row["claimed_by"] for row in ticks}) == 1, ticks
    assert [row["enqueued"] for row in ticks] == [2] + [0] * (len(ticks) - 1), ticks
    messages = drain(amqp_url, queue_name)
    assert messages == {catalogs["never"]: 1, catalogs["stale"]: 1}

    # One log event per claimed tick, with what was due, enqueued and skipped and why.
    events = sorted(
        (e for e in schedulers.tick_events() if e["claimed"]), key=lambda e: e["tick_id"]
    )
    assert [e["tick_id"] for e in events] == [row["tick_id"] for row in ticks]
    first, later = events[0], events[1:]
    assert first["due"] == first["enqueued"] == ["EESSI 2023.06", "Spack 2026.01.01"]
    assert first["skipped"] == {"EESSI 2025.06": "disabled", "Other 1": "recently attempted"}
    for event in later:
        assert event["due"] == event["enqueued"] == []
        assert event["skipped"] == {
            "EESSI 2023.06": "already enqueued",
            "EESSI 2025.06": "disabled",
            "Other 1": "recently attempted",
            "Spack 2026.01.01": "already enqueued",
        }


def test_killing_the_leader_lets_the_other_take_over(
    pg_engine: Engine,
    schedulers: Schedulers,
    catalogs: dict[str, str],
    amqp_url: str,
    queue_name: str,
) -> None:
    first, second = schedulers.start(), schedulers.start()
    wait_for(lambda: len(tick_rows(pg_engine)) >= 3, 90, "three ticks")
    leader = schedulers.by_pid(claimer_pid(tick_rows(pg_engine)[-1]))
    standby = second if leader is first else first
    leader.send_signal(signal.SIGKILL)
    leader.wait(timeout=10)
    killed_at = datetime.now(UTC)
    ticks_before = len(tick_rows(pg_engine))

    def taken_over() -> list[dict[str, Any]]:
        return [r for r in tick_rows(pg_engine) if claimer_pid(r) == standby.pid]

    taken = wait_for(taken_over, 30, "the standby's first tick")
    first_tick = datetime.strptime(taken[0]["tick_id"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    # Within one tick period (1 s) of the kill, plus slack for a loaded machine.
    assert first_tick - killed_at < timedelta(seconds=3), (first_tick, killed_at)
    wait_for(lambda: len(tick_rows(pg_engine)) >= ticks_before + 3, 30, "three more ticks")
    assert schedulers.stop_all()[schedulers.procs.index(standby)] == 0, schedulers.output()

    ticks = tick_rows(pg_engine)
    assert {claimer_pid(r) for r in ticks} == {leader.pid, standby.pid}
    # Every tick of the standby came after the leader's last one: no overlap.
    last_of_leader = max(r["tick_id"] for r in ticks if claimer_pid(r) == leader.pid)
    assert all(r["tick_id"] > last_of_leader for r in taken_over())
    # The standby saw the leader's enqueues in the database and did not repeat them.
    assert drain(amqp_url, queue_name) == {catalogs["never"]: 1, catalogs["stale"]: 1}
