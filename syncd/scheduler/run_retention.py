"""Run history retention (issue 15): once a day the scheduler's leader deletes the sync runs
older than SYNCD_RUN_RETENTION_DAYS (default 180; 0 = keep them all); their changes go with
them (ON DELETE CASCADE). Claimed per UTC day as the catalog retention is (retention.py), so
one replica prunes, once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete

from syncd.config import Settings
from syncd.db.tables import SyncRun
from syncd.logging import get_logger

log = get_logger(__name__)


def run_retention_claim_id(now: datetime) -> str:
    """The claim of the day `now` falls on (UTC); fits scheduler_tick.tick_id's 64."""
    return f"run retention {now.astimezone(UTC).date().isoformat()}"


def prune_runs(engine: Engine, settings: Settings, now: datetime) -> int:
    """Delete the runs started before `now` - SYNCD_RUN_RETENTION_DAYS; how many went."""
    cutoff = now - timedelta(days=settings.run_retention_days)
    with engine.begin() as conn:
        deleted = int(conn.execute(delete(SyncRun).where(SyncRun.started < cutoff)).rowcount)
    if deleted:
        log.info(
            "sync_runs_pruned",
            runs=deleted,
            started_before=cutoff.isoformat(),
            run_retention_days=settings.run_retention_days,
        )
    return deleted
