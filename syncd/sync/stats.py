"""What a committed sync leaves behind besides its rows: SQLite's planner statistics and the
Prometheus metrics, both after the commit, so that neither can undo or fail the sync.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from syncd import metrics
from syncd.domain import SyncStats


def _refresh_sqlite_statistics(engine: Engine, log: Any) -> None:
    """ANALYZE after a sync that wrote rows, on SQLite (the embedded default).

    SQLite keeps no statistics unless told, and without them it picked a plan that took
    minutes for `?cpu_family=` on packages once EESSI and Spack were both imported (0.04 s
    with them). It costs about 0.06 s at that size. PostgreSQL's autovacuum does this itself.
    Committed already: a failure here (a busy database) costs only plan quality.
    """
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    except DBAPIError as exc:
        log.warning("statistics_refresh_failed", error=str(exc).splitlines()[0])


def _record_metrics(catalog: str, stats: SyncStats, duration: float) -> None:
    metrics.SYNC_DURATION.labels(catalog=catalog).observe(duration)
    for kind, counts in (
        ("packages", stats.packages),
        ("versions", stats.versions),
        ("targets", stats.targets),
        ("parent_links", stats.parent_links),
    ):
        for operation in ("created", "updated", "deleted"):
            n = getattr(counts, operation)
            if n:
                metrics.ROWS_WRITTEN.labels(kind=kind, operation=operation).inc(n)
