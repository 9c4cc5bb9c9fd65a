"""A snapshot older than the catalog's is refused (a stale mirror or CDN node), unless forced:
through the service on SQLite and PostgreSQL, with the real EESSI adapter (its header
timestamp, or the files' Last-Modified / mtime when it has none), `syncd update [--force]`
as a process, and an AMQP message's `force` kwarg."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.eessi import EessiAdapter
from adapters.fetch import Fetcher
from syncd import service
from syncd.cli.catalog_commands import update_command
from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.errors import StaleSnapshotError
from syncd.outcomes import read_outcome
from tests.integration.worker.conftest import StartWorker
from tests.integration.worker.fakes import (
    FakeAdapter,
    catalog_row,
    contents,
    expected_contents,
    wait_until,
)
from tests.integration.worker.rabbit import envelope, message_count, publish_raw
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_data import EESSI_TIMESTAMP, dumps, eessi_software_document

NEW = datetime(2026, 3, 18, 2, 15, 12, 970204, tzinfo=UTC)  # EESSI_TIMESTAMP
OLD = datetime(2025, 1, 1, tzinfo=UTC)
REFUSED = "upstream snapshot 2025-01-01T00:00:00Z is older than the stored 2026-03-18T02:15:12Z"
REPO = Path(__file__).resolve().parents[3]
WAIT = 30.0


def utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def unchanged_columns(row: Any) -> tuple[Any, ...]:
    """What a refused snapshot must leave as it was (update_errors and the attempt's stamps,
    `modified` among them, aside)."""
    return (
        row.description,
        row.package_count,
        row.version_count,
        row.content_hash,
        row.upstream_validators,
        utc(row.upstream_snapshot_at),
        utc(row.last_successful_update),
    )


# --- the service, with a fake adapter stating its snapshot time -----------------------------


@pytest.fixture
def fake() -> FakeAdapter:
    adapter = FakeAdapter()
    adapter.snapshot_time = NEW
    return adapter


def update(engine: Engine, fake: FakeAdapter, uuid: str, **kw: Any) -> service.CommandResult:
    return service.update_catalog(engine, {"Fake": fake}, None, catalog_uuid=uuid, **kw)


def test_an_older_snapshot_is_refused_and_nothing_is_written(
    engine: Engine, fake: FakeAdapter
) -> None:
    first = service.import_catalog(engine, {"Fake": fake}, None, name="Fake")
    before = catalog_row(engine, id=first.catalog_id)
    assert before.package_count == 5
    assert utc(before.upstream_snapshot_at) == NEW.replace(microsecond=0)

    fake.generation, fake.snapshot_time = 2, OLD  # 4 packages, made in 2025: a stale mirror
    with pytest.raises(StaleSnapshotError) as refused:
        update(engine, fake, first.catalog_uuid, will_retry=True)
    assert REFUSED in refused.value.message
    assert not service.is_transient(refused.value)  # permanent: a retry would fetch the same

    row = catalog_row(engine, id=first.catalog_id)
    assert REFUSED in row.update_errors and "(will retry)" not in row.update_errors
    assert unchanged_columns(row) == unchanged_columns(before)
    assert contents(engine, first.catalog_id) == expected_contents(1)

    # An import of the same catalog is a refresh too, and refused the same way.
    with pytest.raises(StaleSnapshotError, match=REFUSED):
        service.import_catalog(engine, {"Fake": fake}, None, name="Fake", version="2.0")
    assert contents(engine, first.catalog_id) == expected_contents(1)


def test_force_rolls_the_catalog_back(engine: Engine, fake: FakeAdapter) -> None:
    first = service.import_catalog(engine, {"Fake": fake}, None, name="Fake")
    fake.generation, fake.snapshot_time = 2, OLD

    result = update(engine, fake, first.catalog_uuid, force=True)

    row = catalog_row(engine, id=first.catalog_id)
    assert result.changed and row.update_errors == "" and row.package_count == 4
    assert utc(row.upstream_snapshot_at) == OLD
    assert contents(engine, first.catalog_id) == expected_contents(2)
    # From there on the older time is the stored one: a newer snapshot passes unforced.
    fake.generation, fake.snapshot_time = 3, NEW
    service.import_catalog(engine, {"Fake": fake}, None, name="Fake", version="2.0")
    assert contents(engine, first.catalog_id) == expected_contents(3)


def test_an_equal_time_with_other_content_is_a_republish(engine: Engine, fake: FakeAdapter) -> None:
    first = service.import_catalog(engine, {"Fake": fake}, None, name="Fake")
    fake.generation = 2
    fake.snapshot_time = NEW.replace(microsecond=0)  # the same second, as HTTP dates have it

    assert update(engine, fake, first.catalog_uuid).changed
    assert contents(engine, first.catalog_id) == expected_contents(2)
    # A time the upstream does not state is no reason to refuse, nor to forget the stored one.
    fake.generation, fake.snapshot_time = 3, None
    assert update(engine, fake, first.catalog_uuid).changed
    row = catalog_row(engine, id=first.catalog_id)
    assert utc(row.upstream_snapshot_at) == NEW.replace(microsecond=0)


# --- the real EESSI adapter -------------------------------------------------------------------


def eessi_file(n_software: int, timestamp: str | None) -> bytes:
    doc = eessi_software_document(n_software=n_software)
    if timestamp is None:
        del doc["timestamp"]
    else:
        doc["timestamp"] = timestamp
    return dumps(doc)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    path = FakeUpstream.EESSI_SOFTWARE
    with FakeUpstream(files={path: eessi_file(5, EESSI_TIMESTAMP)}) as up:
        yield up


def eessi_commands(
    engine: Engine, settings: Settings
) -> tuple[Any, Any]:  # (import, update) bound to a real adapter and fetcher
    adapters = {"EESSI": EessiAdapter(settings)}
    fetcher = Fetcher(settings)

    def run_import(**kw: Any) -> service.CommandResult:
        return service.import_catalog(engine, adapters, fetcher, name="EESSI", **kw)

    def run_update(uuid: str, **kw: Any) -> service.CommandResult:
        return service.update_catalog(engine, adapters, fetcher, catalog_uuid=uuid, **kw)

    return run_import, run_update


def test_eessi_header_timestamp_guards_the_catalog(engine: Engine, upstream: FakeUpstream) -> None:
    run_import, run_update = eessi_commands(engine, upstream.settings(eessi_extensions=False))
    first = run_import(version="2023.06")
    assert catalog_row(engine, id=first.catalog_id).package_count == 5

    # Older data at a newer Last-Modified (a mirror that copied it today): the header wins.
    upstream.set_file(upstream.EESSI_SOFTWARE, eessi_file(4, "2025-01-01T00:00:00Z"))
    with pytest.raises(StaleSnapshotError, match=REFUSED):
        run_update(first.catalog_uuid)
    row = catalog_row(engine, id=first.catalog_id)
    assert row.package_count == 5 and REFUSED in row.update_errors
    assert utc(row.upstream_snapshot_at) == NEW.replace(microsecond=0)

    run_update(first.catalog_uuid, force=True)
    row = catalog_row(engine, id=first.catalog_id)
    assert row.package_count == 4 and row.update_errors == ""
    assert utc(row.upstream_snapshot_at) == OLD


@pytest.mark.parametrize("transport", ["http", "file"])
def test_without_a_timestamp_last_modified_or_mtime_guards_the_catalog(
    engine: Engine, upstream: FakeUpstream, tmp_path: Path, transport: str
) -> None:
    """EESSI data without `timestamp`: the HTTP Last-Modified, or a file:// source's mtime."""
    new_file, old_file = eessi_file(5, None), eessi_file(4, None)
    if transport == "http":
        upstream.set_file(upstream.EESSI_SOFTWARE, new_file, last_modified=NEW.timestamp())
        settings = upstream.settings(eessi_extensions=False)
    else:
        software = tmp_path / "eessi_api_metadata_software.json"
        software.write_bytes(new_file)
        os.utime(software, (NEW.timestamp(), NEW.timestamp()))
        settings = Settings(
            eessi_source=tmp_path.as_uri(), allow_file_sources=True, eessi_extensions=False
        )
    run_import, run_update = eessi_commands(engine, settings)
    first = run_import(version="2023.06")

    if transport == "http":
        upstream.set_file(upstream.EESSI_SOFTWARE, old_file, last_modified=OLD.timestamp())
    else:
        software.write_bytes(old_file)
        os.utime(software, (OLD.timestamp(), OLD.timestamp()))
    with pytest.raises(StaleSnapshotError, match=REFUSED):
        run_update(first.catalog_uuid)
    assert catalog_row(engine, id=first.catalog_id).package_count == 5


# --- the real entry points --------------------------------------------------------------------


def syncd(settings_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env.update(settings_env)
    return subprocess.run(
        [sys.executable, "-m", "syncd.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_syncd_update_refuses_then_force_accepts(sqlite_url: str, upstream: FakeUpstream) -> None:
    """`syncd update UUID [--force]` as a process, on the embedded default (runs it here)."""
    env = {
        "SYNCD_DATABASE_URL": sqlite_url,
        "SYNCD_EESSI_SOURCE": upstream.eessi_base,
        "SYNCD_EESSI_EXTENSIONS": "false",
        "SYNCD_ALLOW_PRIVATE_SOURCES": "true",
    }
    imported = syncd(env, "import", "EESSI", "--version", "2023.06")
    assert imported.returncode == 0, imported.stderr
    engine = make_engine(sqlite_url)
    try:
        row = catalog_row(engine, name="EESSI")
        upstream.set_file(upstream.EESSI_SOFTWARE, eessi_file(4, "2025-01-01T00:00:00Z"))

        refused = syncd(env, "update", row.uuid.hex)
        assert refused.returncode == 1
        assert REFUSED in refused.stderr and "--force" in refused.stderr
        assert catalog_row(engine, id=row.id).package_count == 5

        forced = syncd(env, "update", row.uuid.hex, "--force")
        assert forced.returncode == 0, forced.stderr
        assert catalog_row(engine, id=row.id).package_count == 4
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_amqp_force_kwarg(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    """A plain AMQP message: refused once and dead-lettered at once (no retry), then the
    same message with "force": true rolls the catalog back."""
    fake = FakeAdapter()
    fake.snapshot_time = NEW
    start_worker({"Fake": fake})
    first = service.import_catalog(pg_engine, {"Fake": fake}, None, name="Fake")
    fake.generation, fake.snapshot_time = 2, OLD
    queue, url = mq_settings.queue_name, mq_settings.broker_url
    calls = fake.calls

    refused = envelope(queue, "update_catalog", catalog_uuid=first.catalog_uuid)
    publish_raw(url, queue, refused)
    wait_until(lambda: message_count(url, f"{queue}.XQ") == 1, WAIT)
    assert fake.calls == calls + 1  # permanent: not retried
    assert REFUSED in catalog_row(pg_engine, id=first.catalog_id).update_errors
    outcome = read_outcome(pg_engine, refused["message_id"])
    assert outcome is not None and outcome.final and REFUSED in outcome.error
    assert contents(pg_engine, first.catalog_id) == expected_contents(1)

    publish_raw(
        url, queue, envelope(queue, "update_catalog", catalog_uuid=first.catalog_uuid, force=True)
    )
    wait_until(lambda: contents(pg_engine, first.catalog_id) == expected_contents(2), WAIT)
    row = catalog_row(pg_engine, id=first.catalog_id)
    assert row.update_errors == "" and utc(row.upstream_snapshot_at) == OLD


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_cli_through_the_queue_reports_the_refusal_and_force_publishes_the_kwarg(
    mq_settings: Settings,
    pg_engine: Engine,
    start_worker: StartWorker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeAdapter()
    fake.snapshot_time = NEW
    start_worker({"Fake": fake})
    first = service.import_catalog(pg_engine, {"Fake": fake}, None, name="Fake")
    fake.generation, fake.snapshot_time = 2, OLD

    def args(force: bool) -> argparse.Namespace:
        return argparse.Namespace(uuid=first.catalog_uuid, wait=True, timeout=WAIT, force=force)

    from adapters.base import register_adapter, unregister_adapter

    register_adapter("Fake", lambda settings: fake)  # the CLI checks the adapter exists
    try:
        assert update_command(mq_settings, args(force=False)) == 1
        assert REFUSED in capsys.readouterr().err  # the stored outcome of that message
        assert update_command(mq_settings, args(force=True)) == 0
    finally:
        unregister_adapter("Fake")
    assert contents(pg_engine, first.catalog_id) == expected_contents(2)
