"""One tick: claim its id, pick the due catalogs, enqueue them, record what it did.

The claim and the due rule live together because together they make a tick run once and
a catalog go out at most once per refresh interval, whichever replica runs the tick.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from syncd.config import Settings
from syncd.db.process_tables import SchedulerTick
from syncd.db.tables import Catalog
from syncd.logging import bind_job_context, get_logger
from syncd.metrics import SCHEDULER_ENQUEUED, SCHEDULER_TICKS
from syncd.scheduler.enqueue import _mark_enqueued, _publish, _skip
from syncd.scheduler.follow_upstream import _follow_upstream
from syncd.scheduler.results import (
    NOT_TRIED,
    REASON_DISABLED,
    REASON_ENQUEUED,
    REASON_PUBLISH_FAILED,
    REASON_RECENT,
    CatalogRef,
    TickResult,
)
from syncd.scheduler.retention import delete_expired, retention_claim_id
from syncd.scheduler.run_retention import prune_runs

if TYPE_CHECKING:
    import dramatiq

log = get_logger(__name__)

# Claimed ticks are kept this long (who ticked when) and then pruned by later ticks.
TICK_RETENTION = timedelta(days=7)
# A catalog whose last attempt is at most this much younger than the refresh interval is
# still due: the worker stamps last_update_attempt a moment after the tick that enqueued it,
# so with a daily tick and a daily interval the catalog would otherwise be "23:59:59 old" at
# the next tick and refresh only every other day.
MAX_DUE_SLACK = timedelta(seconds=60)


# --- one tick ------------------------------------------------------------------------------


def replica_identity() -> str:
    """Who claimed a tick, for operators: host and process id (fits claimed_by's 200)."""
    return f"{socket.gethostname()[:180]}:{os.getpid()}"


def run_tick(
    engine: Engine,
    broker: dramatiq.Broker,
    settings: Settings,
    *,
    now: datetime,
    tick_id: str,
    adapters: Mapping[str, Any] | None = None,
    fetcher: Any = None,
) -> TickResult:
    """Claim tick `tick_id` and enqueue update_catalog for every due catalog.

    `now` is the tick's time (its scheduled fire time): a catalog is due when its
    last_update_attempt is NULL or older than settings.refresh_interval_seconds at `now`,
    and no update enqueued by an earlier tick is still waiting for a worker (see
    `_skip_reason`). Returns claimed=False and does nothing when the tick was claimed before.
    """
    with bind_job_context(tick_id=tick_id):
        if not _claim(engine, tick_id):
            SCHEDULER_TICKS.labels(outcome="claimed_elsewhere").inc()
            log.info("scheduler_tick", tick_id=tick_id, claimed=False)
            return TickResult(tick_id=tick_id, claimed=False)
        result = TickResult(tick_id=tick_id, claimed=True)
        # Before the due pass: a catalog deleted now must not be enqueued by this tick.
        if settings.retention_days > 0 and _claim(engine, retention_claim_id(now)):
            result.deleted = delete_expired(engine, settings, now)
        if settings.run_retention_days > 0:
            result.runs_pruned = prune_runs(engine, settings, now)
        _enqueue_due(engine, broker, settings, now, result)
        # After the due pass, so that a catalog created here is enqueued once, not twice.
        if settings.follow_upstream:
            _follow_upstream(engine, broker, settings, now, adapters, fetcher, result)
        _record(engine, tick_id, now, len(result.enqueued) + len(result.created))
        SCHEDULER_TICKS.labels(outcome="ran").inc()
        SCHEDULER_ENQUEUED.inc(len(result.enqueued) + len(result.created))
        if result.presumed_lost:
            # Worth a warning: no worker started these for a whole refresh interval.
            log.warning(
                "scheduler_enqueue_presumed_lost",
                tick_id=tick_id,
                catalogs=[c.label for c in result.presumed_lost],
            )
        log.info(
            "scheduler_tick",
            tick_id=tick_id,
            claimed=True,
            due=[c.label for c in result.due],
            enqueued=[c.label for c in result.enqueued],
            skipped={c.label: reason for c, reason in result.skipped},
            created=[c.label for c in result.created],
            not_followed=result.not_followed or None,
            deleted=[c.label for c in result.deleted] or None,
            runs_pruned=result.runs_pruned or None,
        )
        return result


def _claim(engine: Engine, tick_id: str) -> bool:
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(SchedulerTick).values(
                    tick_id=tick_id,
                    claimed_by=replica_identity(),
                    claimed_at=datetime.now(UTC),
                    enqueued=0,
                )
            )
    except IntegrityError:
        return False
    return True


def _record(engine: Engine, tick_id: str, now: datetime, enqueued: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(SchedulerTick).where(SchedulerTick.tick_id == tick_id).values(enqueued=enqueued)
        )
        conn.execute(delete(SchedulerTick).where(SchedulerTick.claimed_at < now - TICK_RETENTION))


def _as_utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; syncd writes them in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _as_utc(value)


def next_due(
    settings: Settings, last_attempt: datetime | None, enqueued_at: datetime | None
) -> datetime | None:
    """When a catalog with auto-update on becomes due; None: due now (never attempted).

    One refresh interval (less the slack, see MAX_DUE_SLACK) after its last attempt, or
    after an enqueue no worker has started yet (see `_skip_reason` for that bound): the
    later of the two, since an enqueue only counts when it is newer than the attempt.
    """
    stamps = [stamp for stamp in (_utc_or_none(last_attempt), _utc_or_none(enqueued_at)) if stamp]
    if not stamps:
        return None
    interval = timedelta(seconds=settings.refresh_interval_seconds)
    return max(stamps) + interval - min(MAX_DUE_SLACK, interval / 10)


def _skip_reason(row: Any, settings: Settings, now: datetime) -> str | None:
    """Why the tick leaves this catalog alone at `now`; None when it is due.

    An update is pending when the scheduler's last enqueue is later than the last attempt
    (a worker stamps the attempt when it starts the command). A pending update counts as
    lost at the same cutoff that makes an attempt old: one refresh interval. Why that bound:
    a healthy system enqueues a catalog once per interval, so even when the message really
    is lost (a purged queue, a broker that lost it) or the workers are down for days, the
    scheduler never enqueues faster than the rate the operator asked for, and a lost
    message costs at most one interval of staleness, as a failed attempt would. A shorter
    bound would pile up copies behind a slow backlog; a longer one would leave a catalog
    whose message was lost stale for longer than its refresh interval.
    """
    if not row.auto_update_enabled:
        return REASON_DISABLED
    due = next_due(settings, row.last_update_attempt, row.update_enqueued_at)
    if due is None or due <= now:
        return None
    return REASON_ENQUEUED if pending_since(row) is not None else REASON_RECENT


def pending_since(row: Any) -> datetime | None:
    """When the scheduler enqueued an update that no worker has started; None if none."""
    enqueued = _utc_or_none(row.update_enqueued_at)
    attempt = _utc_or_none(row.last_update_attempt)
    if enqueued is None or (attempt is not None and attempt >= enqueued):
        return None
    return enqueued


def _enqueue_due(
    engine: Engine, broker: dramatiq.Broker, settings: Settings, now: datetime, result: TickResult
) -> None:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Catalog.uuid,
                Catalog.name,
                Catalog.version,
                Catalog.auto_update_enabled,
                Catalog.last_update_attempt,
                Catalog.update_enqueued_at,
            ).order_by(Catalog.name, Catalog.version)
        ).all()
    for row in rows:
        ref = CatalogRef(uuid=str(row.uuid), name=row.name, version=row.version)
        reason = _skip_reason(row, settings, now)
        if reason is not None:
            _skip(result, ref, reason)
            continue
        result.due.append(ref)
        if pending_since(row) is not None:
            result.presumed_lost.append(ref)
    for ref in result.due:
        if result.broker_unavailable:
            # Each try would wait out the publish deadline again: 50 due catalogs behind a
            # frozen broker would make one tick take 50 deadlines and overlap the next ones.
            _skip(result, ref, REASON_PUBLISH_FAILED, NOT_TRIED)
        elif _publish(broker, settings, ref, result):
            result.enqueued.append(ref)
            _mark_enqueued(engine, ref.uuid, now)
