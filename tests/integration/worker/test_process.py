"""`syncd worker` as a real process: SIGKILL in the middle of an update, SIGTERM, a plugin
adapter found through its entry point, several processes."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from syncd.broker import make_broker
from syncd.config import Settings
from syncd.publish import publish_import, publish_update
from tests.integration.worker.fakes import catalog_row, wait_until
from tests.integration.worker.rabbit import envelope, message_count, publish_raw
from tests.support.fake_upstream import FakeUpstream
from tests.support.toy_adapter import registered_toy_adapter
from tests.support.upstream_data import dumps, spack_counts, spack_document

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
WAIT = 60.0


class WorkerProcess:
    """`python -m syncd.cli worker` with SYNCD_* from `settings`; its log in a file."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        extra_env: dict[str, str] | None = None,
        args: tuple[str, ...] = ("--threads", "2"),
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        env.update(
            SYNCD_DATABASE_URL=settings.database_url,
            SYNCD_BROKER_URL=settings.broker_url,
            SYNCD_QUEUE_NAME=settings.queue_name,
            SYNCD_MIN_BACKOFF_MS=str(settings.min_backoff_ms),
            SYNCD_MAX_BACKOFF_MS=str(settings.max_backoff_ms),
            SYNCD_SHUTDOWN_TIMEOUT_SECONDS=str(settings.shutdown_timeout_seconds),
            SYNCD_SPACK_SOURCE=settings.spack_source,
            SYNCD_ALLOW_PRIVATE_SOURCES="true",
            SYNCD_FETCH_READ_TIMEOUT="20",
            SYNCD_LOG_FORMAT="json",
        )
        env.update(extra_env or {})
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd.cli", "worker", *args],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, count: int = 1) -> None:
        wait_until(
            lambda: self.log().count('"worker_started"') >= count or self.proc.poll() is not None,
            WAIT,
        )
        assert self.proc.poll() is None, self.log()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


def done(engine: Engine, **where: Any) -> Any:
    row = catalog_row(engine, **where)
    if row is None or row.last_successful_update is None:
        return None
    return row if row.last_successful_update >= row.last_update_attempt else None


def test_sigkill_mid_update_keeps_the_catalog_and_the_redelivery_completes_it(
    mq_settings: Settings, pg_engine: Engine, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    old, new = spack_document(12), spack_document(7)
    with FakeUpstream(files={FakeUpstream.SPACK: dumps(old)}) as up:
        settings = dataclasses.replace(mq_settings, spack_source=up.spack_url)
        first = WorkerProcess(settings, tmp_path / "worker1.log")
        workers.append(first)
        first.wait_started()
        broker = make_broker(settings)
        publish_import(broker, settings, name="Spack")
        row = wait_until(lambda: done(pg_engine, name="Spack"), WAIT)
        assert (row.package_count, row.version_count) == spack_counts(old)

        # The new upstream drips its body: the worker is killed while it downloads.
        up.set_file(FakeUpstream.SPACK, dumps(new))
        up.fault(FakeUpstream.SPACK, "slow", delay=0.2, drip_bytes=64)
        up.reset_requests()
        publish_update(broker, settings, catalog_uuid=row.uuid.hex)
        wait_until(
            lambda: (
                len(up.requests_for(FakeUpstream.SPACK)) > 0
                or catalog_row(pg_engine, id=row.id).last_update_attempt > row.last_update_attempt
            ),
            WAIT,
        )
        time.sleep(1.0)
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        # Killed in the middle: the update had started and had not finished.
        assert first.log().count('"fetch_started"') == 2
        assert first.log().count('"command_succeeded"') == 1

        during = catalog_row(pg_engine, id=row.id)
        assert during.last_update_attempt > row.last_update_attempt  # the attempt had begun
        assert (during.package_count, during.version_count) == spack_counts(old)
        assert during.last_successful_update == row.last_successful_update
        assert during.upstream_validators == row.upstream_validators

        # A new worker gets the unacked message back and completes it.
        up.clear_faults()
        second = WorkerProcess(settings, tmp_path / "worker2.log")
        workers.append(second)
        second.wait_started()
        after = wait_until(
            lambda: (
                (r := done(pg_engine, id=row.id))
                and r.last_update_attempt > during.last_update_attempt
                and r
            ),
            WAIT,
        )
        assert (after.package_count, after.version_count) == spack_counts(new)
        assert after.update_errors == ""
        assert message_count(settings.broker_url, settings.queue_name) == 0
        assert message_count(settings.broker_url, f"{settings.queue_name}.XQ") == 0
        broker.close()
        assert second.stop(signal.SIGTERM) == 0


def test_sigterm_lets_the_running_command_finish(
    mq_settings: Settings, pg_engine: Engine, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    with FakeUpstream(files={FakeUpstream.SPACK: dumps(spack_document(5))}) as up:
        settings = dataclasses.replace(
            mq_settings, spack_source=up.spack_url, shutdown_timeout_seconds=20
        )
        up.fault(FakeUpstream.SPACK, "slow", delay=0.05, drip_bytes=256)  # a few seconds
        worker = WorkerProcess(settings, tmp_path / "worker.log")
        workers.append(worker)
        worker.wait_started()
        broker = make_broker(settings)
        publish_import(broker, settings, name="Spack")
        broker.close()
        wait_until(lambda: catalog_row(pg_engine, name="Spack") is not None, WAIT)
        started = time.monotonic()
        assert worker.stop(signal.SIGTERM, timeout=40) == 0
        stopped_after = time.monotonic() - started
        row = done(pg_engine, name="Spack")
        assert row is not None, worker.log()
        assert message_count(settings.broker_url, settings.queue_name) == 0
        assert '"worker_stopped"' in worker.log()
        assert stopped_after < 20 + 5


def test_sigterm_when_idle_stops_at_once(
    mq_settings: Settings, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    worker = WorkerProcess(mq_settings, tmp_path / "worker.log")
    workers.append(worker)
    worker.wait_started()
    started = time.monotonic()
    assert worker.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5


def test_plugin_adapter_imports_through_its_entry_point(
    mq_settings: Settings, pg_engine: Engine, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    plugin_dir = tmp_path / "plugin"
    with registered_toy_adapter(plugin_dir):
        pass  # only the dist-info is needed; the worker process finds it on PYTHONPATH
    worker = WorkerProcess(
        mq_settings,
        tmp_path / "worker.log",
        extra_env={"PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)])},
    )
    workers.append(worker)
    worker.wait_started()

    publish_raw(
        mq_settings.broker_url,
        mq_settings.queue_name,
        envelope(mq_settings.queue_name, "import_catalog", name="Toy"),
    )

    row = wait_until(lambda: done(pg_engine, name="Toy"), WAIT)
    assert (row.version, row.catalog_type, row.package_count) == ("1.0", "package_manager", 2)
    assert worker.stop() == 0


def test_several_processes_share_the_queue(
    mq_settings: Settings, pg_engine: Engine, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    with FakeUpstream(files={FakeUpstream.SPACK: dumps(spack_document(4))}) as up:
        settings = dataclasses.replace(mq_settings, spack_source=up.spack_url)
        supervisor = WorkerProcess(
            settings, tmp_path / "workers.log", args=("--processes", "2", "--threads", "1")
        )
        workers.append(supervisor)
        supervisor.wait_started(count=2)
        broker = make_broker(settings)
        publish_import(broker, settings, name="Spack")
        broker.close()
        assert wait_until(lambda: done(pg_engine, name="Spack"), WAIT)
        assert supervisor.stop(signal.SIGTERM) == 0
        assert supervisor.log().count('"worker_stopped"') == 2


def test_a_broken_plugin_stops_the_worker_from_starting(
    mq_settings: Settings, tmp_path: Path
) -> None:
    """Better no worker than one that dead-letters every command as "no adapter"."""
    dist = tmp_path / "plugin" / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[syncd.adapters]\nBroken = no_such_module:Adapter\n")
    worker = WorkerProcess(
        mq_settings,
        tmp_path / "worker.log",
        extra_env={"PYTHONPATH": os.pathsep.join([str(dist.parent), str(REPO)])},
    )
    assert worker.proc.wait(timeout=60) == 2
    worker.stop()
    assert "the worker cannot start: ModuleNotFoundError" in worker.log()
