"""run_tick on SQLite and PostgreSQL with a StubBroker: claims, due selection, reasons,
follow upstream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, select

from syncd.config import Settings
from syncd.db.tables import Catalog
from syncd.scheduler import (
    REASON_DISABLED,
    REASON_ENQUEUED,
    REASON_PUBLISH_FAILED,
    REASON_RECENT,
    SKIP_REASONS,
    run_tick,
)
from tests.integration.scheduler.helpers import (
    FakeEessi,
    FakeSpack,
    add_catalog,
    skipped_count,
    stub_messages,
    tick_rows,
)

QUEUE = "syncd_test"
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, queue_name=QUEUE, refresh_interval_seconds=3600)


@pytest.fixture
def broker() -> StubBroker:
    stub = StubBroker()
    stub.declare_queue(QUEUE)
    return stub


def by_uuid(pairs: list[tuple[Any, str]]) -> dict[str, str]:
    return {ref.uuid: reason for ref, reason in pairs}


def test_due_catalogs_are_enqueued_once_per_tick(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    never = add_catalog(engine, "EESSI", "2023.06")
    stale = add_catalog(engine, "Spack", "2026.01.01", last_attempt=NOW - 2 * HOUR)
    disabled = add_catalog(engine, "EESSI", "2025.06", enabled=False)
    recent = add_catalog(engine, "Other", "1", last_attempt=NOW - timedelta(minutes=5))

    first = run_tick(engine, broker, settings, now=NOW, tick_id="t1")

    assert first.claimed
    assert {c.uuid for c in first.due} == {never, stale}
    assert {c.uuid for c in first.enqueued} == {never, stale}
    assert by_uuid(first.skipped) == {disabled: REASON_DISABLED, recent: REASON_RECENT}
    assert stub_messages(broker, QUEUE) == {never: 1, stale: 1}
    assert [(r["tick_id"], r["enqueued"]) for r in tick_rows(engine)] == [("t1", 2)]

    # The same tick again (another replica, a leader change mid-tick): nothing happens.
    again = run_tick(engine, broker, settings, now=NOW, tick_id="t1")
    assert not again.claimed and again.enqueued == [] and again.due == []
    assert stub_messages(broker, QUEUE) == {never: 1, stale: 1}

    # The next tick: nobody worked on the catalogs, but their updates are still queued.
    second = run_tick(engine, broker, settings, now=NOW + timedelta(seconds=1), tick_id="t2")
    assert second.enqueued == []
    assert by_uuid(second.skipped)[never] == by_uuid(second.skipped)[stale] == REASON_ENQUEUED
    assert stub_messages(broker, QUEUE) == {never: 1, stale: 1}
    assert [r["tick_id"] for r in tick_rows(engine)] == ["t1", "t2"]


def test_recently_attempted_boundary(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    # A worker stamps last_update_attempt a moment after the tick: at the next tick one
    # interval later the catalog is a hair younger than the interval and must still be due.
    just_under = add_catalog(engine, "A", "1", last_attempt=NOW - HOUR + timedelta(seconds=2))
    half = add_catalog(engine, "B", "1", last_attempt=NOW - HOUR / 2)
    future = add_catalog(engine, "C", "1", last_attempt=NOW + timedelta(seconds=30))

    result = run_tick(engine, broker, settings, now=NOW, tick_id="t1")

    assert [c.uuid for c in result.enqueued] == [just_under]
    assert by_uuid(result.skipped) == {half: REASON_RECENT, future: REASON_RECENT}


def test_publish_failure_is_a_reason_and_the_tick_goes_on(
    engine: Engine, settings: Settings
) -> None:
    catalog = add_catalog(engine, "EESSI", "2023.06")
    no_queue = StubBroker()  # the queue is not declared: every publish fails

    result = run_tick(engine, no_queue, settings, now=NOW, tick_id="t1")

    assert result.claimed and result.enqueued == []
    reason = by_uuid(result.skipped)[catalog]
    assert reason.startswith("publish failed: Publishing update_catalog to queue 'syncd_test'")
    assert [(r["tick_id"], r["enqueued"]) for r in tick_rows(engine)] == [("t1", 0)]


def test_skips_are_counted_by_reason(engine: Engine, settings: Settings) -> None:
    add_catalog(engine, "A", "1", enabled=False)
    add_catalog(engine, "B", "1", last_attempt=NOW - timedelta(minutes=5))
    add_catalog(engine, "C", "1", last_attempt=NOW - 2 * HOUR, enqueued_at=NOW - HOUR / 2)
    add_catalog(engine, "D", "1")
    add_catalog(engine, "D", "2")
    before = {reason: skipped_count(reason) for reason in SKIP_REASONS}

    no_queue = StubBroker()  # the queue is not declared: every publish fails
    result = run_tick(engine, no_queue, settings, now=NOW, tick_id="t1")

    assert len(result.skipped) == 5
    counted = {reason: skipped_count(reason) - before[reason] for reason in SKIP_REASONS}
    # The label is the bare reason, without the exception text of "publish failed: ...".
    assert counted == {
        REASON_DISABLED: 1,
        REASON_RECENT: 1,
        REASON_ENQUEUED: 1,
        REASON_PUBLISH_FAILED: 2,
    }


def test_disabled_catalog_is_never_enqueued(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    disabled = add_catalog(engine, "EESSI", "2023.06", enabled=False, last_attempt=NOW - 9 * HOUR)
    for second in range(5):
        tick_time = NOW + timedelta(seconds=second)
        run_tick(engine, broker, settings, now=tick_time, tick_id=f"t{second}")
    assert stub_messages(broker, QUEUE) == {}
    assert len(tick_rows(engine)) == 5
    assert disabled


def catalogs(engine: Engine) -> dict[tuple[str, str], Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(Catalog.__table__)).all()
    return {(row.name, row.version): row for row in rows}


@pytest.mark.parametrize("enabled", [True, False])
def test_follow_upstream_creates_the_new_version(
    engine: Engine, broker: StubBroker, settings: Settings, enabled: bool
) -> None:
    follow = Settings(**{**settings.__dict__, "follow_upstream": True})
    old = add_catalog(
        engine,
        "EESSI",
        "2023.06",
        enabled=enabled,
        last_attempt=NOW - timedelta(minutes=1),
        source_url="file:///mirror/eessi/",
    )
    adapter = FakeEessi(["2025.06-001", "2025.06", "2023.06"])

    result = run_tick(
        engine, broker, follow, now=NOW, tick_id="t1", adapters={"EESSI": adapter}, fetcher=None
    )

    assert adapter.source == "file:///mirror/eessi/"  # where our catalogs come from
    rows = catalogs(engine)
    assert set(rows) == {("EESSI", "2023.06"), ("EESSI", "2025.06"), ("EESSI", "2025.06-001")}
    for version in ("2025.06", "2025.06-001"):
        new = rows[("EESSI", version)]
        # The flag (and the mirror) come from the newest existing catalog of that name.
        assert new.auto_update_enabled is enabled
        assert new.catalog_type == "binary_runtime"
        assert new.source_url == "file:///mirror/eessi/"
    created = {str(rows[("EESSI", v)].uuid) for v in ("2025.06", "2025.06-001")}
    assert {c.uuid for c in result.created} == created
    # Each new catalog gets the one update that fills it; the old one is not due.
    assert stub_messages(broker, QUEUE) == dict.fromkeys(created, 1)
    assert old not in stub_messages(broker, QUEUE)
    assert tick_rows(engine)[0]["enqueued"] == 2

    # The next tick creates nothing more and enqueues nothing: an enabled new catalog's first
    # update is still waiting (no worker), a disabled one is left alone from now on.
    second = run_tick(
        engine, broker, follow, now=NOW + HOUR / 60, tick_id="t2", adapters={"EESSI": adapter}
    )
    assert second.created == [] and second.enqueued == []
    assert len(catalogs(engine)) == 3
    reason = REASON_ENQUEUED if enabled else REASON_DISABLED
    assert {by_uuid(second.skipped)[uuid] for uuid in created} == {reason}
    assert stub_messages(broker, QUEUE) == dict.fromkeys(created, 1)


def test_follow_upstream_leaves_alone_what_it_should(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    follow = Settings(**{**settings.__dict__, "follow_upstream": True})
    add_catalog(engine, "Spack", "2026.01.01", catalog_type="source_package", last_attempt=NOW)
    adapters: dict[str, Any] = {
        # No EESSI catalog in the database: the site does not track EESSI.
        "EESSI": FakeEessi(["2025.06", "2023.06"]),
        # One moving label upstream that is not ours: updates, not new catalogs, follow it.
        "Spack": FakeSpack(["2026.11.27"]),
    }
    result = run_tick(engine, broker, follow, now=NOW, tick_id="t1", adapters=adapters)
    assert result.created == []
    assert result.not_followed == {
        "EESSI": "no catalog of this name",
        "Spack": "upstream lists none of our versions",
    }
    assert adapters["EESSI"].calls == 0  # nothing downloaded for an untracked upstream
    assert len(catalogs(engine)) == 1


def test_follow_upstream_survives_a_failing_discover(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    follow = Settings(**{**settings.__dict__, "follow_upstream": True})
    due = add_catalog(engine, "EESSI", "2023.06")
    adapters = {"EESSI": FakeEessi(RuntimeError("upstream is down"))}
    result = run_tick(engine, broker, follow, now=NOW, tick_id="t1", adapters=adapters)
    assert result.not_followed == {"EESSI": "discover failed: upstream is down"}
    assert stub_messages(broker, QUEUE) == {due: 1}


def test_follow_upstream_publish_failure_removes_the_empty_row(
    engine: Engine, settings: Settings
) -> None:
    follow = Settings(**{**settings.__dict__, "follow_upstream": True})
    add_catalog(engine, "EESSI", "2023.06", last_attempt=NOW)
    adapters = {"EESSI": FakeEessi(["2025.06", "2023.06"])}
    result = run_tick(engine, StubBroker(), follow, now=NOW, tick_id="t1", adapters=adapters)
    assert result.created == []
    reasons = {ref.label: reason.split(":")[0] for ref, reason in result.skipped}
    assert reasons == {"EESSI 2023.06": "recently attempted", "EESSI 2025.06": "publish failed"}
    # Gone again, so the next tick tries the whole step once more.
    assert set(catalogs(engine)) == {("EESSI", "2023.06")}


def test_follow_upstream_with_the_real_eessi_adapter(
    engine: Engine, broker: StubBroker, settings: Settings, upstream_dir: Path
) -> None:
    from adapters.base import load_adapters

    sample = upstream_dir / "eessi" / "eessi_api_metadata_software.docs-test-sample.json"
    follow = Settings(**{**settings.__dict__, "follow_upstream": True, "allow_file_sources": True})
    add_catalog(engine, "EESSI", "2023.06", last_attempt=NOW, source_url=sample.as_uri())
    adapters = {"EESSI": load_adapters(follow)["EESSI"]}

    # No fetcher given: the tick makes (and closes) its own.
    result = run_tick(engine, broker, follow, now=NOW, tick_id="t1", adapters=adapters)

    assert [c.label for c in result.created] == ["EESSI 2025.06"]
    new = catalogs(engine)[("EESSI", "2025.06")]
    assert new.source_url == sample.as_uri() and new.auto_update_enabled
    assert stub_messages(broker, QUEUE) == {str(new.uuid): 1}
