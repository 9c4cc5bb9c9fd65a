"""The sync history's write side (issue 15), through `syncd import|update` as processes on
both backends (the embedded default: the CLI runs the command itself, trigger `cli`): one
sync_run row per attempt, the sync_change rows of a refresh (each kind, updated fields,
target summaries), the outbox events, and the refused and unchanged runs that write no rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from syncd import service
from syncd.db.process_tables import EventOutbox, SyncChange, SyncRun
from syncd.db.tables import Catalog, Package
from syncd.errors import StaleSnapshotError
from syncd.service.runs import RunCatalog, RunContext, RunWriter
from syncd.sync import sync_catalog
from tests.integration.worker.fakes import FakeAdapter
from tests.support.catalog_cli import (
    FIRST,
    changed_spack,
    run_syncd,
    spack_env,
    truncated_spack,
    write,
)
from tests.support.records import small_snapshot

COUNTS = {"created", "updated", "deleted", "unchanged"}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "repology.json"
    write(path, FIRST)
    return path


def runs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(SyncRun).order_by(SyncRun.id)))


def changes_of(engine: Engine, run: Any) -> list[Any]:
    with engine.connect() as conn:
        query = select(SyncChange).where(SyncChange.run_id == run.id).order_by(SyncChange.id)
        return list(conn.execute(query))


def events(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(b) for b in conn.scalars(select(EventOutbox.body).order_by(EventOutbox.id))]


def catalog_uuid(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(Catalog.uuid)).scalar_one().hex)


def syncd_ok(env: dict[str, str], *args: str) -> str:
    done = run_syncd(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_then_a_changed_refresh_records_runs_changes_and_events(
    engine: Engine, db_url: str, source: Path
) -> None:
    env = spack_env(db_url, source)
    syncd_ok(env, "import", "Spack")
    uuid = catalog_uuid(engine)

    [first] = runs(engine)
    assert (first.trigger, first.outcome, first.command) == ("cli", "succeeded", "import_catalog")
    assert (first.catalog_uuid.hex, first.catalog_name, first.message_id) == (uuid, "Spack", "")
    assert first.catalog_type == "source_package" and first.error == ""
    assert set(first.counts) == {"packages", "versions", "targets"}
    assert all(set(kind) == COUNTS for kind in first.counts.values())
    assert first.counts["packages"] == {"created": 12, "updated": 0, "deleted": 0, "unchanged": 0}
    assert source.as_uri() in first.validators  # what upstream said about the file
    assert first.started <= first.finished
    # A first import: one change with its counts, not a row per package.
    [imported] = changes_of(engine, first)
    assert imported.change == "catalog_imported" and first.change_count == 1
    assert imported.details == {
        "packages": 12,
        "versions": first.counts["versions"]["created"],
        "targets": first.counts["targets"]["created"],
    }
    assert (imported.package_name, imported.version, imported.module_version) == ("", "", "")
    [synced] = events(engine)
    assert synced["type"] == "catalog.synced"
    assert synced["catalog"] == {"uuid": uuid, "name": "Spack", "version": first.catalog_version}
    payload = synced["payload"]
    assert payload["run_uuid"] == first.uuid.hex and payload["trigger"] == "cli"
    assert payload["counts"] == first.counts and payload["change_count"] == 1
    assert payload["changes"][0]["change"] == "catalog_imported"
    assert payload["changes_url"] == f"/api/marketplace-software-changes/?run_uuid={first.uuid.hex}"

    write(source, changed_spack())
    plan = json.loads(syncd_ok(env, "update", uuid, "--dry-run", "--json"))
    syncd_ok(env, "update", uuid)
    second = runs(engine)[-1]
    assert (second.trigger, second.outcome, second.command) == (
        "cli",
        "succeeded",
        "update_catalog",
    )
    assert second.counts["packages"] == {"created": 1, "updated": 3, "deleted": 2, "unchanged": 7}
    recorded = changes_of(engine, second)
    assert second.change_count == len(recorded)
    assert {(c.created, c.catalog_uuid.hex) for c in recorded} == {(second.finished, uuid)}
    by_key = {(c.change, c.package_name, c.version): c for c in recorded}
    # What the dry run announced is what the run recorded (one code path).
    assert set(by_key) == {
        (c["change"], c["package_name"], c.get("version", "")) for c in plan["changes"]
    }
    assert {"package_added", "package_removed", "package_updated"} <= {k[0] for k in by_key}
    assert ("package_added", "pkg-100", "") in by_key
    assert {k for k in by_key if k[0] == "package_removed"} == {
        ("package_removed", "pkg-010", ""),
        ("package_removed", "pkg-011", ""),
    }
    assert "description" in by_key[("package_updated", "pkg-003", "")].details["fields"]
    assert ("version_added", "pkg-004", "9.9.9") in by_key
    assert ("version_removed", "pkg-005", "1.5.9") in by_key
    added = by_key[("target_added", "pkg-004", "9.9.9")].details
    assert added["targets"] == 3 and len(added["names"]) == len(set(added["names"])) > 0
    assert by_key[("target_removed", "pkg-005", "1.5.9")].details["targets"] == 2
    for change in recorded:
        if change.change.startswith("package"):
            assert (change.version, change.module_version) == ("", "")
    synced = events(engine)[-1]["payload"]
    assert synced["run_uuid"] == second.uuid.hex and synced["change_count"] == len(recorded)
    assert [(c["change"], c["package_name"], c["version"]) for c in synced["changes"]] == [
        (c.change, c.package_name, c.version) for c in recorded
    ][:100]
    assert all(set(c) == {"change", "package_name", "version", "module_version", "details"}
               for c in synced["changes"])  # fmt: skip

    # The same upstream again: a run, `unchanged`, with nothing written and no event.
    syncd_ok(env, "update", uuid)
    third = runs(engine)[-1]
    assert (third.outcome, third.change_count, third.error) == ("unchanged", 0, "")
    assert changes_of(engine, third) == [] and len(events(engine)) == 2


def test_a_refused_refresh_is_a_refused_run_and_force_lets_it_through(
    engine: Engine, db_url: str, source: Path
) -> None:
    env = spack_env(db_url, source)
    syncd_ok(env, "import", "Spack")
    uuid = catalog_uuid(engine)
    write(source, truncated_spack(3))  # 9 of 12 packages gone

    refused = run_syncd(env, "update", uuid)
    assert refused.returncode == 1
    run = runs(engine)[-1]
    assert (run.trigger, run.outcome, run.change_count) == ("cli", "refused", 0)
    assert "upstream would remove 9 of 12 packages (75%)" in run.error
    assert "syncd update UUID --force" in run.error
    assert run.counts["packages"] == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}
    failed = events(engine)[-1]
    assert failed["type"] == "catalog.sync_failed"
    assert failed["payload"] == {
        "run_uuid": run.uuid.hex,
        "trigger": "cli",
        "outcome": "refused",
        "error": run.error,
        "will_retry": False,
    }

    syncd_ok(env, "update", uuid, "--force")
    forced = runs(engine)[-1]
    assert forced.outcome == "succeeded" and forced.counts["packages"]["deleted"] == 9
    assert sum(c.change == "package_removed" for c in changes_of(engine, forced)) == 9
    assert [e["type"] for e in events(engine)] == [
        "catalog.synced",
        "catalog.sync_failed",
        "catalog.synced",
    ]


def test_a_failed_import_without_a_catalog_row_is_a_failed_run(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    env = spack_env(db_url, tmp_path / "missing.json")
    assert run_syncd(env, "import", "Spack").returncode == 1
    [run] = runs(engine)
    assert (run.outcome, run.catalog_uuid, run.catalog_name) == ("failed", None, "Spack")
    assert run.error and run.trigger == "cli"
    [failed] = events(engine)
    assert failed["type"] == "catalog.sync_failed" and failed["catalog"]["uuid"] is None


def test_an_older_snapshot_is_a_refused_run_through_the_service(engine: Engine) -> None:
    """The service's own default: a command without a RunContext is a `message` run."""
    fake = FakeAdapter()
    fake.snapshot_time = datetime(2026, 3, 1, tzinfo=UTC)
    first = service.import_catalog(engine, {"Fake": fake}, None, name="Fake")
    fake.generation, fake.snapshot_time = 2, datetime(2025, 1, 1, tzinfo=UTC)  # a stale mirror
    with pytest.raises(StaleSnapshotError):
        service.update_catalog(engine, {"Fake": fake}, None, catalog_uuid=first.catalog_uuid)
    imported, stale = runs(engine)
    assert (imported.trigger, imported.outcome) == ("message", "succeeded")
    assert (stale.outcome, stale.change_count, stale.message_id) == ("refused", 0, "")
    assert "older than" in stale.error
    assert stale.validators == {fake.default_source(): {"etag": '"gen-2"'}}
    assert events(engine)[-1]["payload"]["outcome"] == "refused"


def test_the_run_commits_with_the_rows_or_not_at_all(engine: Engine) -> None:
    """The run, its changes and its event are written in the sync's transaction: a failure
    after them, before the commit, leaves none of them and none of the rows."""
    with engine.begin() as conn:
        catalog_id = conn.execute(
            insert(Catalog).values(name="Test", version="1", catalog_type="binary_runtime")
        ).inserted_primary_key[0]  # type: ignore[index]
    run = RunContext(trigger="cli")
    named = RunCatalog(None, "Test", "1", "binary_runtime")
    writer = RunWriter(run, "import_catalog", catalog_id, named, {})

    def write_then_crash(conn: Any, stats: Any, changes: Any) -> None:
        writer(conn, stats, changes)
        assert writer.written
        raise RuntimeError("crash before the commit")

    with pytest.raises(RuntimeError):
        sync_catalog(engine, catalog_id, small_snapshot(), on_written=write_then_crash)
    assert runs(engine) == [] and events(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(Package.id)).first() is None

    sync_catalog(engine, catalog_id, small_snapshot(), on_written=writer)
    [done] = runs(engine)
    assert (done.uuid, done.outcome, done.change_count) == (run.uuid, "succeeded", 1)
    assert [e["type"] for e in events(engine)] == ["catalog.synced"]
