"""syncd.outcomes on SQLite and PostgreSQL: what `syncd import|update --wait` reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, insert, select
from structlog.testing import capture_logs

from syncd.db.engine import make_engine
from syncd.db.process_tables import CommandOutcome
from syncd.outcomes import RETENTION, Outcome, read_outcome, record_outcome

CATALOG = "ab" * 16


def test_the_latest_attempt_replaces_the_earlier_one(engine: Engine) -> None:
    assert read_outcome(engine, "m-1") is None
    record_outcome(engine, "m-1", "import_catalog", succeeded=False, final=False, error="503")
    assert read_outcome(engine, "m-1") == Outcome(False, False, "503", None)
    record_outcome(
        engine, "m-1", "import_catalog", succeeded=True, final=True, catalog_uuid=CATALOG
    )
    assert read_outcome(engine, "m-1") == Outcome(True, True, "", CATALOG)


def test_outcomes_older_than_the_retention_are_dropped(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(CommandOutcome).values(
                message_id="old",
                actor="update_catalog",
                succeeded=True,
                final=True,
                error="",
                finished_at=datetime.now(UTC) - RETENTION - timedelta(hours=1),
            )
        )
    record_outcome(engine, "new", "update_catalog", succeeded=True, final=True)
    assert read_outcome(engine, "old") is None
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CommandOutcome)).scalar_one() == 1


def test_a_database_failure_is_logged_not_raised(tmp_path: Path) -> None:
    unmigrated = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")  # no such table
    try:
        with capture_logs() as logs:
            record_outcome(unmigrated, "m-1", "update_catalog", succeeded=True, final=True)
    finally:
        unmigrated.dispose()
    assert [entry["event"] for entry in logs] == ["command_outcome_not_written"]
