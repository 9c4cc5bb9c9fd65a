"""`syncd worker --processes 2` runs one events relay for the group, not one per process,
and a relay child that dies is restarted with its relay."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from syncd.db.engine import make_engine
from tests.reliability.harness import SyncdProcess, command_env, wait_until
from tests.support.events import bind_queue, take, write_events
from tests.support.services import unique_name

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]


def test_a_worker_group_runs_one_relay(pg_url: str, amqp_url: str, tmp_path: Path) -> None:
    exchange, queue = unique_name("ev"), unique_name("evq")
    bind_queue(amqp_url, exchange, queue)
    _, env = command_env(
        pg_url, amqp_url, "evgroup", events_exchange=exchange, events_poll_seconds=0.1
    )
    group = SyncdProcess(
        "worker", env, tmp_path / "worker.log", args=("--processes", "2", "--threads", "1")
    )
    engine = make_engine(pg_url)
    try:
        group.start()
        group.wait_event("worker_started", timeout=60, count=2)
        [started] = group.wait_event("events_relay_started", timeout=60)
        ids = write_events(engine, 3)
        assert [b["event_id"] for _, _, b in take(amqp_url, queue, 3)] == ids
        assert len(group.events("events_relay_started", since_start=True)) == 1

        # The relay's process dies: the supervisor restarts it, relay included.
        relay_pid = int(started["pid"])
        os.kill(relay_pid, signal.SIGKILL)
        wait_until(
            lambda: len(group.events("events_relay_started", since_start=True)) == 2,
            timeout=60,
            what="the restarted child's relay",
        )
        more = write_events(engine, 2)
        assert [b["event_id"] for _, _, b in take(amqp_url, queue, 2)] == more
    finally:
        group.stop()
        engine.dispose()
