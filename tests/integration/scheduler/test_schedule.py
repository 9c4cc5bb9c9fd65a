"""Tick ids, misfire handling, the in-process scheduler and the advisory-lock election."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine

from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.scheduler import (
    TICK_JOB_ID,
    AdvisoryLeader,
    InProcessScheduler,
    add_tick_job,
    crontab_day_of_week,
    make_trigger,
    misfire_grace_seconds,
    previous_fire_time,
    start_in_process,
    tick_id_for,
)
from tests.integration.scheduler.helpers import add_catalog, stub_messages, tick_rows
from tests.support.services import PG_ADMIN_DSN

QUEUE = "syncd_test"
NOW = datetime(2026, 11, 27, 6, 41, 17, 250_000, tzinfo=UTC)


def wait_for(predicate: object, timeout: float = 20.0, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(step)
    raise AssertionError(f"not true within {timeout} s")


@pytest.mark.parametrize(
    ("settings", "fire", "grace"),
    [
        (Settings(tick_seconds=1), "2026-11-27T06:41:17Z", 1),
        (Settings(tick_seconds=60), "2026-11-27T06:41:00Z", 30),
        (Settings(), "2026-11-27T00:00:00Z", 43_200),  # daily, on the UTC midnight grid
        (Settings(tick_cron="*/15 * * * *"), "2026-11-27T06:30:00Z", 450),
        (Settings(tick_cron="0 3 * * 1-5"), "2026-11-27T03:00:00Z", 43_200),  # a Friday
    ],
)
def test_tick_id_is_the_fire_time_whenever_the_job_starts(
    settings: Settings, fire: str, grace: int
) -> None:
    trigger = make_trigger(settings)
    fire_time = previous_fire_time(trigger, NOW)
    assert tick_id_for(fire_time) == fire
    # Two replicas starting the job a little apart compute the same id.
    assert previous_fire_time(trigger, fire_time) == fire_time
    assert previous_fire_time(trigger, fire_time + timedelta(milliseconds=900)) == fire_time
    assert misfire_grace_seconds(trigger, NOW) == grace


def test_weekend_gap_of_a_cron_schedule() -> None:
    trigger = make_trigger(Settings(tick_cron="0 3 * * 1-5"))
    sunday = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert tick_id_for(previous_fire_time(trigger, sunday)) == "2026-11-27T03:00:00Z"


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("5-7,1", "fri,sat,sun,mon"),
        ("mon-fri", "mon-fri"),
    ],
)
def test_crontab_weekdays_count_from_sunday(field: str, names: str) -> None:
    assert crontab_day_of_week(field) == names


def test_bad_schedule_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="SYNCD_TICK_CRON"):
        make_trigger(Settings(tick_cron="every day"))
    with pytest.raises(ValueError, match="SYNCD_TICK_SECONDS"):
        make_trigger(Settings(tick_seconds=0))


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Engine:
    return make_engine(sqlite_url)


def test_a_stalled_scheduler_does_not_fire_a_burst(sqlite_url: str, sqlite_engine: Engine) -> None:
    settings = Settings(database_url=sqlite_url, queue_name=QUEUE, tick_seconds=1)
    broker = StubBroker()
    broker.declare_queue(QUEUE)
    catalog = add_catalog(sqlite_engine, "EESSI", "2023.06")
    scheduler = InProcessScheduler(None, timezone=UTC)
    add_tick_job(scheduler, sqlite_engine, broker, settings, None)
    job = scheduler.get_job(TICK_JOB_ID)
    assert job.coalesce and job.max_instances == 1 and job.misfire_grace_time == 1
    # Paused over three ticks, resumed 0.2 s after the third: the missed ticks collapse into
    # one run (the latest, within its grace), and the next regular tick is 0.8 s away.
    scheduler.start(paused=True)
    third = int(time.time()) + 3
    time.sleep(third + 0.2 - time.time())
    scheduler.resume()
    time.sleep(0.4)
    scheduler.shutdown(wait=True)
    ticks = tick_rows(sqlite_engine)
    assert [row["tick_id"] for row in ticks] == [tick_id_for(datetime.fromtimestamp(third, tz=UTC))]
    assert stub_messages(broker, QUEUE) == {catalog: 1}


def test_in_process_scheduler_ticks_on_sqlite(sqlite_url: str, sqlite_engine: Engine) -> None:
    settings = Settings(database_url=sqlite_url, queue_name=QUEUE, tick_seconds=1)
    broker = StubBroker()
    broker.declare_queue(QUEUE)
    due = add_catalog(sqlite_engine, "EESSI", "2023.06")
    add_catalog(sqlite_engine, "EESSI", "2025.06", enabled=False)
    scheduler = start_in_process(settings, sqlite_engine, broker)
    try:
        wait_for(lambda: len(tick_rows(sqlite_engine)) >= 2)
    finally:
        scheduler.shutdown(wait=True)
    ticks = tick_rows(sqlite_engine)
    # Nothing consumes the queue: the first tick's update is still waiting at the later ones.
    assert [row["enqueued"] for row in ticks] == [1] + [0] * (len(ticks) - 1)
    assert stub_messages(broker, QUEUE) == {due: 1}
    # Whole seconds on the grid, each claimed once (a loaded machine may skip one).
    stamps = [datetime.strptime(r["tick_id"], "%Y-%m-%dT%H:%M:%SZ") for r in ticks]
    assert all(later > earlier for earlier, later in itertools.pairwise(stamps))


def _terminate_lock_holder(pg_url: str) -> None:
    dbname = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'syncd-scheduler-leader'",
            (dbname,),
        )


def test_one_leader_and_takeover(pg_url: str) -> None:
    first, second = AdvisoryLeader(pg_url), AdvisoryLeader(pg_url)
    try:
        assert first.ensure() and first.is_leader
        assert not second.ensure() and not second.is_leader
        held_on = first._conn
        # Still held: the check finds its own lock and keeps the connection (no flapping).
        assert first.ensure() and first._conn is held_on
        first.release()
        assert second.ensure()
        assert not first.ensure()
    finally:
        first.release()
        second.release()


def test_a_leader_whose_connection_dropped_steps_down_or_reacquires(pg_url: str) -> None:
    first, second = AdvisoryLeader(pg_url), AdvisoryLeader(pg_url)
    try:
        assert first.ensure()
        _terminate_lock_holder(pg_url)
        # The lock went with the session: a standby gets it, the old leader steps down.
        wait_for(second.ensure, timeout=10)
        assert not first.ensure() and not first.is_leader
        # And the other way round: a dropped leader with no rival re-acquires.
        _terminate_lock_holder(pg_url)
        wait_for(first.ensure, timeout=10)
        assert first.is_leader
    finally:
        first.release()
        second.release()


# 2026-12-25 is a Friday: the Mondays after it are Dec 28, Jan 4, 11, 18; Jan 1 is a Friday.
CHRISTMAS = datetime(2026, 12, 25, tzinfo=UTC)


def _fire_ids(settings: Settings, count: int) -> list[str]:
    trigger = make_trigger(settings)
    fires = []
    fire = trigger.get_next_fire_time(None, CHRISTMAS)
    while fire is not None and len(fires) < count:
        fires.append(tick_id_for(fire))
        fire = trigger.get_next_fire_time(fire, fire)
    return fires


def test_both_day_fields_restricted_fire_on_either_as_crontab_does() -> None:
    # The 1st of the month or a Monday, as crontab(5) says; APScheduler alone wants both.
    assert _fire_ids(Settings(tick_cron="0 3 1 * 1"), 5) == [
        "2026-12-28T03:00:00Z",
        "2027-01-01T03:00:00Z",
        "2027-01-04T03:00:00Z",
        "2027-01-11T03:00:00Z",
        "2027-01-18T03:00:00Z",
    ]


def test_a_day_field_starting_with_a_star_leaves_the_other_alone() -> None:
    # crontab: "*/2" counts as unrestricted, so only Mondays on odd days of the month fire.
    assert _fire_ids(Settings(tick_cron="0 3 */2 * mon"), 2) == [
        "2027-01-11T03:00:00Z",
        "2027-01-25T03:00:00Z",
    ]
    assert _fire_ids(Settings(tick_cron="0 3 * * 1"), 2) == [
        "2026-12-28T03:00:00Z",
        "2027-01-04T03:00:00Z",
    ]


def test_tick_id_and_grace_of_the_combined_trigger() -> None:
    trigger = make_trigger(Settings(tick_cron="0 3 1 * 1"))
    new_year_noon = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)  # a Friday, the 1st
    fire = previous_fire_time(trigger, new_year_noon)
    assert tick_id_for(fire) == "2027-01-01T03:00:00Z"
    assert previous_fire_time(trigger, fire + timedelta(milliseconds=900)) == fire
    # Sunday Jan 3: the latest tick is still the 1st, not the Monday before it.
    sunday = datetime(2027, 1, 3, 23, 0, tzinfo=UTC)
    assert tick_id_for(previous_fire_time(trigger, sunday)) == "2027-01-01T03:00:00Z"
    # Half the gap from Dec 28 to Jan 1 (4 days).
    assert misfire_grace_seconds(trigger, CHRISTMAS) == 2 * 86_400
