"""`syncd worker --processes 2` runs one events relay for the group, not one per process,
and a relay child that dies is restarted with its relay."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.db.engine import make_engine
from tests.reliability.harness import SyncdProcess, command_env, wait_until
from tests.reliability.private_services import free_port
from tests.support.events import bind_queue, take, write_events
from tests.support.services import unique_name

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]


def test_a_worker_group_runs_one_relay(pg_url: str, amqp_url: str, tmp_path: Path) -> None:
    exchange, queue = unique_name("ev"), unique_name("evq")
    bind_queue(amqp_url, exchange, queue)
    metrics_port = free_port()
    _, env = command_env(
        pg_url,
        amqp_url,
        "evgroup",
        events_exchange=exchange,
        events_poll_seconds=0.1,
        metrics_port=metrics_port,
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
        # The group's /metrics (the supervisor's, summing its children) has the relay's.
        samples = _metrics(metrics_port)
        sent = ("syncd_events_published_total", "catalog.synced", "rabbitmq")
        assert samples[sent] == 2.0, samples
        assert samples[("syncd_events_outbox_backlog", "", "")] == 0.0, samples

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


def _metrics(port: int) -> dict[tuple[str, str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, s.labels.get("type", ""), s.labels.get("destination", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("syncd_events_")
    }
