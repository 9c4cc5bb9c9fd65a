"""The in-process queue's pending_command rows: written when a command is accepted, kept
while Dramatiq will retry it, deleted once its last attempt ended (success, permanent
failure, retries spent). RabbitMQ's brokers never write them. The stop and the restart of
`syncd run` are tested through the real process in tests/reliability/test_run_stop.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import Engine, insert

from syncd.broker import make_broker, resume_pending, unfinished, worker_resources
from syncd.broker.embedded import pending_commands
from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.db.migrate import upgrade
from syncd.db.process_tables import PendingCommand
from syncd.errors import UpstreamError
from syncd.outcomes import read_outcome
from syncd.pending import list_pending
from syncd.publish import publish_import
from syncd.worker import start_in_process
from tests.integration.worker.fakes import FakeAdapter, wait_until


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'syncd.sqlite3'}"
    upgrade(url)
    return Settings(
        database_url=url,
        queue_name="syncd",
        min_backoff_ms=50,
        max_backoff_ms=100,
        max_retries=1,
        worker_threads=1,
        shutdown_timeout_seconds=5,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def adapter() -> FakeAdapter:
    return FakeAdapter()


@pytest.fixture
def broker(settings: Settings, engine: Engine, adapter: FakeAdapter) -> Iterator[dramatiq.Broker]:
    broker = make_broker(settings, engine=engine)
    worker_resources(broker).provide(adapters={"Fake": adapter}, fetcher=object())
    yield broker
    broker.close()


def _run_until_outcome(
    settings: Settings, broker: dramatiq.Broker, engine: Engine, message_id: str
) -> None:
    worker = start_in_process(settings, broker, engine)
    try:
        wait_until(lambda: (o := read_outcome(engine, message_id)) is not None and o.final, 20)
        # The row goes in the after-hook, right after the outcome is written.
        wait_until(lambda: not list_pending(engine), 5)
    finally:
        worker.stop(timeout=5000)


def test_an_accepted_command_is_kept_until_its_retry_succeeded(
    settings: Settings, engine: Engine, broker: dramatiq.Broker, adapter: FakeAdapter
) -> None:
    adapter.failures = [UpstreamError("upstream answered 503", transient=True)]
    message_id = publish_import(broker, settings, name="Fake", version="1.0")
    # Accepted before any worker runs: in the database, not only in memory.
    [row] = list_pending(engine)
    assert (row.message_id, row.actor, row.kwargs) == (
        message_id,
        "import_catalog",
        {"name": "Fake", "version": "1.0"},
    )
    _run_until_outcome(settings, broker, engine, message_id)
    outcome = read_outcome(engine, message_id)
    assert outcome is not None and outcome.succeeded, outcome
    assert adapter.calls == 2  # the retry was queued under the same message id, kept pending
    assert list_pending(engine) == []


@pytest.mark.parametrize(
    "failures",
    [
        pytest.param([UpstreamError("gone", transient=False)], id="permanent"),
        pytest.param([UpstreamError("503", transient=True)] * 2, id="retries-spent"),
    ],
)
def test_a_command_that_failed_for_good_is_not_kept(
    settings: Settings,
    engine: Engine,
    broker: dramatiq.Broker,
    adapter: FakeAdapter,
    failures: list[BaseException],
) -> None:
    adapter.failures = list(failures)
    message_id = publish_import(broker, settings, name="Fake", version="1.0")
    _run_until_outcome(settings, broker, engine, message_id)
    outcome = read_outcome(engine, message_id)
    assert outcome is not None and not outcome.succeeded and outcome.final, outcome
    assert list_pending(engine) == []  # dead-lettered: running it again at start is wrong


def test_resume_queues_leftovers_under_their_ids_and_drops_what_cannot_run(
    settings: Settings, engine: Engine, broker: dramatiq.Broker
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(PendingCommand),
            [
                {
                    "message_id": "kept",
                    "actor": "import_catalog",
                    "kwargs": {"name": "Fake"},
                    "accepted_at": datetime(2026, 1, 1, tzinfo=UTC),
                },
                {
                    "message_id": "bad",
                    "actor": "delete_everything",
                    "kwargs": {},
                    "accepted_at": datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
                },
            ],
        )
    resumed = resume_pending(broker, settings.queue_name)
    assert [c.message_id for c in resumed] == ["kept"]
    assert [c.message_id for c in list_pending(engine)] == ["kept"]  # not written twice
    assert broker.queues[settings.queue_name].qsize() == 1
    left = unfinished(broker)
    assert [(u.command.message_id, u.cut_off) for u in left] == [("kept", False)]


def test_rabbitmq_brokers_keep_nothing_in_the_database(settings: Settings, engine: Engine) -> None:
    broker = make_broker(
        Settings(database_url=settings.database_url, broker_url="amqp://127.0.0.1:1/")
    )
    assert pending_commands(broker) is None
    assert unfinished(broker) == [] and resume_pending(broker, "syncd") == []
