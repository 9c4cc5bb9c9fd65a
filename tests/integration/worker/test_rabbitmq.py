"""The worker on the real RabbitMQ and PostgreSQL, in this process, with a fake adapter."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, insert

from syncd.cli.redrive import redrive_command
from syncd.config import Settings
from syncd.db.tables import Catalog
from syncd.errors import UpstreamError
from syncd.publish import publish_import, publish_update
from tests.integration.worker.conftest import StartWorker
from tests.integration.worker.fakes import (
    FakeAdapter,
    catalog_row,
    contents,
    count_catalogs,
    expected_contents,
    wait_until,
)
from tests.integration.worker.rabbit import envelope, message_count, peek_all, publish_raw

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

WAIT = 30.0
DOCS = Path(__file__).resolve().parents[3] / "docs"


def succeeded(engine: Engine, **where: Any) -> Any:
    row = catalog_row(engine, **where)
    if row is None or row.last_successful_update is None:
        return None
    return row if row.last_successful_update >= row.last_update_attempt else None


def existing_catalog(engine: Engine, version: str = "2.0") -> None:
    """A Fake catalog row that has never synced: an import of its version marks it before
    it fetches, so a failed fetch is written there (an import that would create the row
    downloads first, and its failure leaves no row)."""
    with engine.begin() as conn:
        conn.execute(
            insert(Catalog).values(name="Fake", version=version, catalog_type="binary_runtime")
        )


def doc_publish() -> Any:
    """The `publish` function of docs/messages.md's plain-pika example."""
    text = (DOCS / "messages.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block, "docs/messages.md", "exec"), namespace)
    return namespace["publish"]


def test_message_from_plain_pika_imports_a_catalog(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    fake = FakeAdapter()
    start_worker({"Fake": fake})
    publish = doc_publish()

    publish(
        mq_settings.broker_url, "import_catalog", {"name": "Fake"}, queue=mq_settings.queue_name
    )

    row = wait_until(lambda: succeeded(pg_engine, name="Fake"), WAIT)
    assert (row.version, row.update_errors) == ("2.0", "")
    assert contents(pg_engine, row.id) == expected_contents(1)

    fake.generation = 2
    publish(
        mq_settings.broker_url,
        "update_catalog",
        {"catalog_uuid": row.uuid.hex},
        queue=mq_settings.queue_name,
    )
    wait_until(lambda: contents(pg_engine, row.id) == expected_contents(2), WAIT)


def test_invalid_messages_are_dead_lettered_with_one_line_and_the_worker_goes_on(
    mq_settings: Settings,
    pg_engine: Engine,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue, url = mq_settings.queue_name, mq_settings.broker_url
    start_worker({"Fake": FakeAdapter()})
    bad: list[tuple[bytes | dict[str, Any], str]] = [
        (b"\x00\xffgarbage", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[" * 100_000, "too deeply"),
        ({"actor_name": "import_catalog"}, "lacks queue_name"),
        (envelope(queue, "drop_tables"), "unknown actor 'drop_tables'"),
        (envelope(queue, "import_catalog", nom="Fake"), "unexpected kwargs nom"),
        (envelope(queue, "update_catalog", catalog_uuid=7), "must be a string"),
        (envelope("other_queue", "import_catalog", name="Fake"), "came from"),
        (
            dict(envelope(queue, "import_catalog", name="Fake"), options={"max_retries": 99}),
            "not accepted",
        ),
        (envelope(queue, "import_catalog", name="F" * 300_000), "the limit is"),
    ]
    with structlog.testing.capture_logs() as logs, caplog.at_level(logging.WARNING):
        publish_raw(url, queue, *(body for body, _ in bad))
        wait_until(lambda: message_count(url, f"{queue}.XQ") == len(bad), WAIT)
        # The worker is still consuming: a good message after the bad ones runs.
        publish_import(_broker(mq_settings), mq_settings, name="Fake")
        wait_until(lambda: succeeded(pg_engine, name="Fake"), WAIT)

    rejected = [e for e in logs if e["event"] == "message_rejected"]
    assert len(rejected) == len(bad)
    for (_, reason), event in zip(bad, rejected, strict=True):
        assert reason in event["reason"], (reason, event)
        assert event["dead_letter_queue"] == f"{queue}.XQ"
    # One line each: Dramatiq itself logged nothing about them.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("dramatiq")] == []
    # Dead letters are kept untouched for inspection.
    assert b"\x00\xffgarbage" in peek_all(url, f"{queue}.XQ")


def _broker(settings: Settings) -> Any:
    from syncd.broker import make_broker

    return make_broker(settings)


def test_duplicate_and_concurrent_messages_give_one_correct_catalog(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    queue, url = mq_settings.queue_name, mq_settings.broker_url
    fake = FakeAdapter()
    fake.fetch_delay = 0.2  # the messages overlap in the worker's 4 threads
    start_worker({"Fake": fake})

    first = envelope(queue, "import_catalog", name="Fake", version="2.0")
    publish_raw(
        url,
        queue,
        first,
        first,
        *[envelope(queue, "import_catalog", name="Fake") for _ in range(8)],
    )
    wait_until(lambda: fake.calls >= 10 and message_count(url, queue) == 0, WAIT)
    row = wait_until(lambda: succeeded(pg_engine, name="Fake"), WAIT)
    assert count_catalogs(pg_engine) == 1

    fake.generation = 2
    updates = [envelope(queue, "update_catalog", catalog_uuid=row.uuid.hex) for _ in range(5)]
    imports = [envelope(queue, "import_catalog", name="Fake") for _ in range(5)]
    publish_raw(url, queue, *[m for pair in zip(updates, imports, strict=True) for m in pair])
    wait_until(lambda: fake.calls >= 20 and message_count(url, queue) == 0, WAIT)
    wait_until(lambda: succeeded(pg_engine, name="Fake"), WAIT)

    assert count_catalogs(pg_engine) == 1
    row = catalog_row(pg_engine, name="Fake")
    assert row.update_errors == ""
    assert row.package_count == len({name for name, _, _ in expected_contents(2)})
    assert contents(pg_engine, row.id) == expected_contents(2)
    assert message_count(url, f"{queue}.XQ") == 0


def test_transient_failure_is_retried_with_backoff_then_succeeds(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    fake = FakeAdapter()
    fake.failures = [
        UpstreamError("Fetching fake failed: HTTP 503 from upstream", transient=True, status=503)
    ]
    broker = start_worker({"Fake": fake})
    seen_errors: list[str] = []

    existing_catalog(pg_engine)  # a row to write errors to
    publish_import(broker, mq_settings, name="Fake", version="2.0")

    def done() -> Any:
        row = catalog_row(pg_engine, name="Fake")
        if row is not None and row.update_errors:
            seen_errors.append(row.update_errors)
        return succeeded(pg_engine, name="Fake")

    wait_until(done, WAIT, interval=0.01)
    assert fake.calls == 2
    assert "Fetching fake failed: HTTP 503 from upstream (will retry)" in seen_errors
    assert catalog_row(pg_engine, name="Fake").update_errors == ""


def test_retries_exhausted_end_in_the_dead_letter_queue(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    queue, url = mq_settings.queue_name, mq_settings.broker_url
    fake = FakeAdapter()
    fake.failures = [UpstreamError(f"HTTP 503 #{i}", transient=True) for i in range(5)]
    broker = start_worker({"Fake": fake})

    existing_catalog(pg_engine)  # a row to write errors to
    publish_import(broker, mq_settings, name="Fake", version="2.0")

    wait_until(lambda: message_count(url, f"{queue}.XQ") == 1, WAIT)
    assert fake.calls == mq_settings.max_retries + 1
    # The last attempt knows it is the last: no "(will retry)".
    assert catalog_row(pg_engine, name="Fake").update_errors == "HTTP 503 #2"
    (dead,) = peek_all(url, f"{queue}.XQ")
    # The dead letter is the last delivery as it was published (its retry count then).
    assert json.loads(dead)["options"]["retries"] == mq_settings.max_retries


def test_permanent_failure_is_dead_lettered_at_once_and_redrive_brings_it_back(
    mq_settings: Settings,
    pg_engine: Engine,
    start_worker: StartWorker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue, url = mq_settings.queue_name, mq_settings.broker_url
    adapters: dict[str, Any] = {}
    broker = start_worker(adapters)

    publish_import(broker, mq_settings, name="Fake")
    # Dead-lettered first, so that it heads the dead-letter queue for `--limit 1` below.
    wait_until(lambda: message_count(url, f"{queue}.XQ") == 1, WAIT)
    publish_raw(url, queue, b"still garbage")
    publish_raw(url, queue, b"[" * 100_000 + b"]" * 100_000)  # too deep for json.loads
    wait_until(lambda: message_count(url, f"{queue}.XQ") == 3, WAIT)
    assert count_catalogs(pg_engine) == 0

    adapters["Fake"] = FakeAdapter()  # the fix: the adapter is installed
    args = argparse.Namespace(queue=None, limit=1)
    assert redrive_command(mq_settings, args) == 0
    assert "moved 1 message(s)" in capsys.readouterr().out

    row = wait_until(lambda: succeeded(pg_engine, name="Fake"), WAIT)
    assert row.update_errors == ""
    # The garbage stayed; redriving it too brings it back to the dead letters.
    assert message_count(url, f"{queue}.XQ") == 2
    assert redrive_command(mq_settings, argparse.Namespace(queue=queue, limit=None)) == 0
    assert "moved 2 message(s)" in capsys.readouterr().out
    wait_until(lambda: message_count(url, f"{queue}.XQ") == 2, WAIT)


def test_redrive_without_dead_letter_queue_says_so(
    mq_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(queue="never_declared", limit=None)
    assert redrive_command(mq_settings, args) == 1
    assert "never_declared.XQ" in capsys.readouterr().err


def test_publish_to_an_unreachable_broker_raises_transient_error(mq_settings: Settings) -> None:
    from syncd.broker import make_broker
    from syncd.errors import TransientError

    settings = Settings(broker_url="amqp://guest:guest@127.0.0.1:1/nowhere", queue_name="q")
    broker = make_broker(settings)
    with pytest.raises(TransientError, match="Publishing import_catalog to queue 'q' failed"):
        publish_import(broker, settings, name="Fake")
    with pytest.raises(TransientError):
        publish_update(broker, settings, catalog_uuid="0" * 32)


@pytest.mark.skipif(shutil.which("amqp-publish") is None, reason="amqp-tools not installed")
def test_documented_shell_command_updates_a_catalog(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    fake = FakeAdapter()
    broker = start_worker({"Fake": fake})
    publish_import(broker, mq_settings, name="Fake")
    row = wait_until(lambda: succeeded(pg_engine, name="Fake"), WAIT)
    fake.generation = 2

    text = (DOCS / "messages.md").read_text()
    (command,) = [
        b for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S) if "amqp-publish" in b
    ]
    queue = mq_settings.queue_name
    command = (
        command.replace("amqp://guest:guest@rabbitmq.example.org:5672/%2F", mq_settings.broker_url)
        .replace("--routing-key=syncd", f"--routing-key={queue}")
        .replace('\\"queue_name\\":\\"syncd\\"', f'\\"queue_name\\":\\"{queue}\\"')
        .replace("UUID=5f0c3a4e9b2d4c1f8e7a6b5c4d3e2f10", f"UUID={row.uuid.hex}")
    )
    assert queue in command and row.uuid.hex in command
    subprocess.run(["bash", "-euc", command], check=True, timeout=30)

    wait_until(lambda: contents(pg_engine, row.id) == expected_contents(2), WAIT)


def test_time_limit_interrupts_a_stuck_command_and_it_is_retried(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    settings = dataclasses.replace(mq_settings, time_limit_ms=1000)
    fake = FakeAdapter()
    fake.fetch_delay = 30.0  # the first attempt hangs in the fetch
    broker = start_worker({"Fake": fake}, settings)
    errors: list[str] = []

    existing_catalog(pg_engine)  # a row to write errors to
    publish_import(broker, settings, name="Fake", version="2.0")

    def interrupted() -> bool:
        row = catalog_row(pg_engine, name="Fake")
        if row is not None and row.update_errors:
            errors.append(row.update_errors)
            fake.fetch_delay = 0.0  # upstream recovers
            return True
        return False

    wait_until(interrupted, WAIT)
    assert errors[0] == (
        "Fetching the upstream data did not finish within the worker's time limit and was "
        "stopped (will retry)"
    )
    row = wait_until(lambda: succeeded(pg_engine, name="Fake"), WAIT)
    assert contents(pg_engine, row.id) == expected_contents(1)
