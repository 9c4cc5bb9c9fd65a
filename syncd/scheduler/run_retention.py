"""Run history retention (issue 15): the scheduler's leader (the replica that claimed the
tick) deletes the sync runs that started more than SYNCD_RUN_RETENTION_DAYS ago (default 180;
0 = keep them all); their changes go with them (ON DELETE CASCADE).

Every tick, not once a day as the catalog retention (retention.py): the DELETE is a range
of the index on `started`, which finds nothing at most ticks, and it needs no claim of its
own (a tick pruning what another already pruned deletes nothing).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete

from syncd.config import Settings
from syncd.db.process_tables import SyncRun
from syncd.logging import get_logger

log = get_logger(__name__)


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
