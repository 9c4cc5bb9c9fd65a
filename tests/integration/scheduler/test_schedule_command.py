"""`syncd schedule` through the real command: the next ticks of SYNCD_TICK_CRON and when
each auto-updated catalog goes out, on the embedded default (SQLite, no broker)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from syncd.db.engine import make_engine
from tests.integration.scheduler.helpers import add_catalog

SYNCD = [sys.executable, "-m", "syncd.cli", "schedule"]
DAY = 86_400


def _schedule(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.run(
        [*SYNCD, *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_next_ticks_and_due_catalogs_on_the_embedded_default(
    tmp_path: Path, sqlite_url: str
) -> None:
    # sqlite_url is tmp_path/syncd.sqlite3: the embedded default when run from tmp_path.
    engine = make_engine(sqlite_url)
    add_catalog(engine, "EESSI", "2023.06")  # never attempted
    add_catalog(engine, "EESSI", "2025.06", last_attempt=at("2026-12-27T03:00:05"))
    add_catalog(  # enqueued by a tick, not started by a worker yet
        engine,
        "Spack",
        "2026.01.01",
        last_attempt=at("2026-12-01T03:00:00"),
        enqueued_at=at("2026-12-24T03:00:00"),
    )
    add_catalog(engine, "Spack", "2025.01.01", last_attempt=at("2026-11-01T03:00:00"))
    add_catalog(engine, "Toy", "1", enabled=False)
    engine.dispose()

    result = _schedule(
        tmp_path,
        "--next",
        "3",
        "--from",
        "2026-12-25T00:00:00",
        SYNCD_TICK_CRON="0 3 1 * 1",
        SYNCD_REFRESH_INTERVAL_SECONDS=str(7 * DAY),
    )

    assert result.returncode == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    # The 1st of the month or a Monday, as crontab reads "0 3 1 * 1".
    assert lines[:4] == [
        "2026-12-28T03:00:00+00:00",
        "2027-01-01T03:00:00+00:00",
        "2027-01-04T03:00:00+00:00",
        "",
    ]
    table = [line.split() for line in lines[4:]]
    assert table[0] == ["CATALOG", "DUE", "ENQUEUED", "BY", "THE", "TICK", "AT"]
    # Due one interval (less the scheduler's 60 s slack) after the later of the last attempt
    # and a pending enqueue; it goes out with the first tick at or after that.
    assert table[1:] == [
        ["EESSI/2023.06", "now", "2026-12-28T03:00:00+00:00"],
        ["EESSI/2025.06", "2027-01-03T02:59:05+00:00", "2027-01-04T03:00:00+00:00"],
        ["Spack/2025.01.01", "now", "2026-12-28T03:00:00+00:00"],
        [
            "Spack/2026.01.01",
            "2026-12-31T02:59:00+00:00",
            "(an",
            "update",
            "is",
            "already",
            "enqueued)",
            "2027-01-01T03:00:00+00:00",
        ],
    ]


def test_default_count_and_interval_ticks(tmp_path: Path, sqlite_url: str) -> None:
    result = _schedule(tmp_path, "--from", "2026-12-25T10:00:00+02:00")
    assert result.returncode == 0, result.stderr
    # Daily by default, on the UTC midnight grid; --from is read in its own offset.
    assert result.stdout.splitlines() == [
        "2026-12-26T00:00:00+00:00",
        "2026-12-27T00:00:00+00:00",
        "2026-12-28T00:00:00+00:00",
        "2026-12-29T00:00:00+00:00",
        "2026-12-30T00:00:00+00:00",
        "",
        "no catalog has auto-update on",
    ]


def test_a_bad_expression_or_argument_exits_2_with_a_clear_message(
    tmp_path: Path, sqlite_url: str
) -> None:
    bad = _schedule(tmp_path, SYNCD_TICK_CRON="0 3 1 *")
    assert bad.returncode == 2
    assert "SYNCD_TICK_CRON: expected 5 fields, got 4" in bad.stderr
    assert bad.stdout == ""
    weekday = _schedule(tmp_path, SYNCD_TICK_CRON="0 3 * * 9")
    assert weekday.returncode == 2
    assert "SYNCD_TICK_CRON" in weekday.stderr
    zero = _schedule(tmp_path, "--next", "0")
    assert zero.returncode == 2
    assert "--next: must be at least 1" in zero.stderr
    when = _schedule(tmp_path, "--from", "tomorrow")
    assert when.returncode == 2
    assert "--from: not an ISO 8601 time" in when.stderr
