"""syncd_queue_depth{state="delayed"} while a worker runs: the retries it holds count.

A running Dramatiq worker takes a retry from `<queue>.DQ` at once and keeps it in memory,
unacknowledged, until its backoff has passed, so RabbitMQ's ready count of the delay queue
(what a passive declare reports) is 0 the whole time.
"""

from __future__ import annotations

import dataclasses
import socket
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from syncd.broker import make_broker
from syncd.config import Settings
from syncd.errors import UpstreamError
from syncd.publish import publish_import
from tests.integration.test_operations import _app
from tests.integration.worker.conftest import StartWorker
from tests.integration.worker.fakes import FakeAdapter, wait_until
from tests.integration.worker.rabbit import message_count
from tests.integration.worker.test_process import WorkerProcess
from tests.support.fake_upstream import FakeUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _delayed(port: int, queue: str) -> float:
    """The worker's syncd_queue_depth{queue, state="delayed"}; -1 while it has none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    wanted = {"queue": queue, "state": "delayed"}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "syncd_queue_depth" and sample.labels == wanted:
                return float(sample.value)
    return -1.0


def test_a_worker_holding_a_retry_reports_it_as_delayed(
    mq_settings: Settings, tmp_path: Path
) -> None:
    port = _free_port()
    with FakeUpstream() as up:
        up.fault(FakeUpstream.SPACK, "500")  # every request: a transient failure, retried
        settings = dataclasses.replace(
            mq_settings,
            spack_source=up.spack_url,
            # Long enough that the retry is still waiting when we look.
            min_backoff_ms=120_000,
            max_backoff_ms=240_000,
            max_retries=3,
        )
        worker = WorkerProcess(
            settings,
            tmp_path / "worker.log",
            extra_env={"SYNCD_METRICS_PORT": str(port), "SYNCD_FETCH_RETRIES": "0"},
        )
        try:
            worker.wait_started()
            broker = make_broker(settings)
            publish_import(broker, settings, name="Spack")
            broker.close()
            wait_until(lambda: '"command_failed"' in worker.log(), 60)
            wait_until(lambda: _delayed(port, settings.queue_name) >= 1, 30)
            # What the broker itself reports for the delay queue: nothing ready.
            assert message_count(settings.broker_url, f"{settings.queue_name}.DQ") == 0
            assert '"will_retry": true' in worker.log()
        finally:
            assert worker.stop() == 0, worker.log()


def test_the_api_of_syncd_run_counts_the_retries_its_own_worker_holds(
    start_worker: StartWorker, mq_settings: Settings, pg_engine: Engine
) -> None:
    """`syncd run` serves /metrics from the API, in the process of its worker."""
    settings = dataclasses.replace(mq_settings, min_backoff_ms=120_000, max_backoff_ms=240_000)
    adapter = FakeAdapter()
    adapter.failures = [
        UpstreamError("upstream answered 503", transient=True)
    ]  # transient: retried
    broker = start_worker({"Fake": adapter}, settings)
    publish_import(broker, settings, name="Fake")
    wait_until(lambda: adapter.calls == 1, 30)

    client = TestClient(_app(settings, pg_engine, broker))

    def delayed() -> float:
        text = client.get("/metrics").text
        wanted = {"queue": settings.queue_name, "state": "delayed"}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "syncd_queue_depth" and sample.labels == wanted:
                    return float(sample.value)
        return -1.0

    assert wait_until(lambda: delayed() >= 1, 30)
    assert message_count(settings.broker_url, f"{settings.queue_name}.DQ") == 0
