"""`syncd import`, `syncd update` (with --wait), `syncd discover`: the CLI bodies."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.base import register_adapter, unregister_adapter
from syncd.cli.catalog_commands import import_command, update_command
from syncd.cli.discover import discover_command
from syncd.config import Settings
from syncd.errors import UpstreamError
from tests.integration.worker.conftest import StartWorker
from tests.integration.worker.fakes import (
    FakeAdapter,
    catalog_row,
    contents,
    count_catalogs,
    expected_contents,
)
from tests.support.fake_upstream import FakeUpstream

WAIT = 30.0


@pytest.fixture
def fake() -> Iterator[FakeAdapter]:
    """A FakeAdapter that load_adapters() returns too (the CLI checks names with it)."""
    adapter = FakeAdapter()
    register_adapter("Fake", lambda settings: adapter)
    yield adapter
    unregister_adapter("Fake")


def import_args(name: str = "Fake", **kw: Any) -> argparse.Namespace:
    values = {
        "name": name,
        "version": None,
        "source": None,
        "wait": False,
        "timeout": WAIT,
        "force": False,
    }
    return argparse.Namespace(**{**values, **kw})


def update_args(uuid: str, **kw: Any) -> argparse.Namespace:
    return argparse.Namespace(
        **{"uuid": uuid, "wait": False, "timeout": WAIT, "force": False, **kw}
    )


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_import_and_update_wait_for_the_outcome(
    mq_settings: Settings,
    pg_engine: Engine,
    start_worker: StartWorker,
    fake: FakeAdapter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start_worker({"Fake": fake})

    assert import_command(mq_settings, import_args(wait=True)) == 0
    out = capsys.readouterr().out
    assert "queued as message" in out and "done, catalog" in out and "5 packages" in out
    row = catalog_row(pg_engine, name="Fake")

    fake.generation = 2
    assert update_command(mq_settings, update_args(str(row.uuid), wait=True)) == 0
    assert contents(pg_engine, row.id) == expected_contents(2)

    fake.failures = [UpstreamError("Fetching x failed: the JSON is cut short", transient=False)]
    assert update_command(mq_settings, update_args(row.uuid.hex, wait=True)) == 1
    err = capsys.readouterr().err
    assert "syncd: update of Fake 2.0 failed: Fetching x failed: the JSON is cut short" in err

    # The next attempt is followed on its own: the stale error does not count as its outcome.
    fake.generation = 3
    fake.fetch_delay = 0.5
    assert update_command(mq_settings, update_args(row.uuid.hex, wait=True)) == 0
    assert contents(pg_engine, row.id) == expected_contents(3)


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_wait_times_out_without_a_worker(
    mq_settings: Settings, fake: FakeAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration.worker.rabbit import declare_worker_queue

    declare_worker_queue(mq_settings.broker_url, mq_settings.queue_name)
    assert import_command(mq_settings, import_args(wait=True, timeout=1.0)) == 1
    error = capsys.readouterr().err
    assert "no result after 1 s and no catalog row shows an attempt" in error
    assert "is a `syncd worker` running?" in error
    assert f"{mq_settings.queue_name}.XQ" in error


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_import_wait_reports_a_failure_before_the_catalog_exists(
    mq_settings: Settings,
    pg_engine: Engine,
    start_worker: StartWorker,
    fake: FakeAdapter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No row ever shows this failure (the latest version could not be found), so it is
    followed by message id: reported at once, not after the timeout."""
    fake.versions = []  # upstream lists no versions: a permanent failure at discover
    start_worker({"Fake": fake})
    started = time.monotonic()
    assert import_command(mq_settings, import_args(wait=True, timeout=WAIT)) == 1
    assert time.monotonic() - started < WAIT  # told by the outcome, not by giving up
    error = capsys.readouterr().err
    assert "syncd: import of Fake failed: Fake upstream at" in error
    assert "offers no catalog versions" in error
    assert count_catalogs(pg_engine) == 0


@pytest.mark.postgres
def test_update_names_what_is_wrong(
    pg_url: str, pg_engine: Engine, fake: FakeAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=pg_url, broker_url="amqp://guest:guest@127.0.0.1:1/x")
    assert update_command(settings, update_args("0" * 32)) == 1
    assert "syncd: no catalog with uuid 00000000000000000000000000000000" in capsys.readouterr().err
    assert update_command(settings, update_args("not-a-uuid")) == 1
    assert "syncd: not a catalog uuid: 'not-a-uuid'" in capsys.readouterr().err
    assert import_command(settings, import_args(name="Nope")) == 1
    assert "No loader configuration found for Nope" in capsys.readouterr().err

    # A catalog no installed adapter handles: Waldur's message, nothing published.
    from syncd.service import import_catalog

    result = import_catalog(pg_engine, {"Fake": fake}, None, name="Fake")
    unregister_adapter("Fake")
    assert update_command(settings, update_args(result.catalog_uuid)) == 1
    assert "No loader configuration found for Fake (binary_runtime)." in capsys.readouterr().err


@pytest.mark.postgres
def test_publish_failure_is_exit_code_2(
    pg_url: str, fake: FakeAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=pg_url, broker_url="amqp://guest:guest@127.0.0.1:1/x")
    assert import_command(settings, import_args()) == 2
    assert "Publishing import_catalog to queue 'syncd' failed" in capsys.readouterr().err


def test_embedded_default_runs_the_command_here(
    sqlite_url: str, fake: FakeAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=sqlite_url)  # no broker: the in-process queue
    assert import_command(settings, import_args()) == 0
    assert "running it in this process" in capsys.readouterr().out
    from syncd.db.engine import make_engine

    engine = make_engine(sqlite_url)
    try:
        row = catalog_row(engine, name="Fake")
        assert contents(engine, row.id) == expected_contents(1)
        fake.failures = [UpstreamError("upstream is broken", transient=False)]
        assert update_command(settings, update_args(row.uuid.hex)) == 1
        assert "syncd: update of Fake 2.0 failed: upstream is broken" in capsys.readouterr().err
    finally:
        engine.dispose()


def test_discover_lists_each_adapter(
    sqlite_url: str, fake: FakeAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeUpstream() as up:
        settings = up.settings(database_url=sqlite_url)
        code = discover_command(settings, argparse.Namespace(json=True))
        entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
        assert entries["Fake"]["latest_version"] == "2.0"
        assert {"EESSI", "Spack", "Fake"} <= set(entries)
        assert code == (0 if all(e["latest_version"] for e in entries.values()) else 1)

        assert discover_command(settings, argparse.Namespace(json=False)) == code
        table = capsys.readouterr().out
        assert table.splitlines()[0].split()[:2] == ["NAME", "TYPE"]
        assert "Fake" in table
