"""The scheduler: auto-update ticks that fire once, however many replicas run.

A tick enqueues `update_catalog` for every catalog whose `auto_update_enabled` is true and
whose last attempt is older than SYNCD_REFRESH_INTERVAL_SECONDS, unless an update the
scheduler enqueued for it has not started yet (see "Pending updates" below). Three layers
make a tick fire once:

1. Tick ids come from the scheduled fire time, not from the clock at run time: every replica
   runs the same trigger in UTC (an interval trigger is anchored at the Unix epoch), so all
   of them compute the same id for the same tick.
2. Leader election (PostgreSQL): a session-level advisory lock held on a dedicated
   connection. Only its holder ticks. Every replica tries at every tick, so when the leader
   dies (its session ends, the lock is freed) a standby takes over at the next tick; the
   leader checks its connection and the lock before each tick and steps down when it lost
   them.
3. The tick claim: `run_tick` first inserts the tick id into `scheduler_tick` and commits.
   A duplicate key means another replica already ran that tick (say, across a leader
   change), so nothing is enqueued twice. The claim is committed before publishing, so a
   leader that dies mid-tick leaves the rest of that tick undone rather than done twice;
   the catalogs it did not reach are still due and go out at the next tick.

On SQLite (the embedded default) there is no election: one scheduler runs in the process of
`syncd run`; the claim still keeps two processes on one file from ticking twice.

Missed ticks: jobs are added with coalesce=True and a misfire grace of half a tick period,
and the job store is in memory, so a scheduler that was down or stalled runs at most one
tick when it comes back, and none if the latest one is older than the grace.

Pending updates: only a worker sets last_update_attempt, so while the workers are down or
the queue is backed up every due catalog would be enqueued again at every tick (60 copies
an hour with a tick a minute). After the broker confirmed a publish, the tick stamps
`catalog.update_enqueued_at` with its own time; a catalog whose stamp is newer than its last
attempt is skipped as "already enqueued" until the stamp is one refresh interval old (see
`_skip_reason` for why that bound). An in-process queue dies with its process, so
`start_in_process` forgets the stamps such a queue may have held.

Publish failures: a catalog whose publish fails is skipped ("publish failed: ...") and is
still due at the next tick. Once a publish finds the broker out of reach (no confirm within
SYNCD_PUBLISH_TIMEOUT_SECONDS, connection refused), the tick publishes nothing more, in the
due pass and in follow upstream alike, so a frozen broker costs a tick one deadline rather
than one per due catalog (see `_broker_unavailable`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sys
import threading
import uuid as uuid_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import NullPool

from syncd.config import Settings, env_name
from syncd.db.engine import make_engine
from syncd.db.tables import Catalog, SchedulerTick
from syncd.logging import bind_job_context, get_logger
from syncd.metrics import SCHEDULER_ENQUEUED, SCHEDULER_SKIPPED, SCHEDULER_TICKS

if TYPE_CHECKING:
    import dramatiq

log = get_logger(__name__)

TICK_JOB_ID = "syncd-auto-update-tick"
# Interval ticks sit on a grid anchored here, so replicas started at different times agree
# on the fire times (a daily tick fires at 00:00 UTC).
GRID_ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)
# The (int4, int4) advisory lock key of the leader ("sync", "schd"): advisory locks are per
# database, so one constant key elects one leader per syncd database.
LEADER_LOCK_KEY = (0x73796E63, 0x73636864)
# Claimed ticks are kept this long (who ticked when) and then pruned by later ticks.
TICK_RETENTION = timedelta(days=7)
# A catalog whose last attempt is at most this much younger than the refresh interval is
# still due: the worker stamps last_update_attempt a moment after the tick that enqueued it,
# so with a daily tick and a daily interval the catalog would otherwise be "23:59:59 old" at
# the next tick and refresh only every other day.
MAX_DUE_SLACK = timedelta(seconds=60)

REASON_DISABLED = "disabled"
REASON_RECENT = "recently attempted"
# Enqueued by an earlier tick and not started by a worker yet.
REASON_ENQUEUED = "already enqueued"
REASON_PUBLISH_FAILED = "publish failed"
SKIP_REASONS = (REASON_DISABLED, REASON_RECENT, REASON_ENQUEUED, REASON_PUBLISH_FAILED)
# The detail of "publish failed" for the catalogs a tick did not try, and the reason an
# adapter was not followed, once a publish found the broker out of reach (_broker_unavailable).
NOT_TRIED = "broker unavailable, not tried this tick"

# Every reason's series exists from the start at 0, so that rate() and increase() see the
# first skip of a reason too (a series that appears with 1 has no increase to show).
for _reason in SKIP_REASONS:
    SCHEDULER_SKIPPED.labels(reason=_reason)


@dataclass(frozen=True)
class CatalogRef:
    uuid: str
    name: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass
class TickResult:
    tick_id: str
    claimed: bool
    due: list[CatalogRef] = field(default_factory=list)
    enqueued: list[CatalogRef] = field(default_factory=list)
    # (catalog, reason): disabled, recently attempted, already enqueued, publish failed: ...
    skipped: list[tuple[CatalogRef, str]] = field(default_factory=list)
    # Due catalogs whose earlier enqueue no worker started within a refresh interval: that
    # message is presumed lost (or the workers are down), so they were enqueued again.
    presumed_lost: list[CatalogRef] = field(default_factory=list)
    # Follow upstream: catalogs this tick created for new upstream versions.
    created: list[CatalogRef] = field(default_factory=list)
    # Follow upstream: adapters not followed this tick, and why.
    not_followed: dict[str, str] = field(default_factory=dict)
    # A publish of this tick found the broker out of reach: the tick publishes nothing more.
    broker_unavailable: bool = False


# --- schedule arithmetic -------------------------------------------------------------------


# Day-of-week names in crontab numbering (0 and 7 are Sunday).
_CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CRON_DOW_ITEM = re.compile(r"^(?:\*|(\d)(?:-(\d))?)(?:/(\d+))?$")


def crontab_day_of_week(field_text: str) -> str:
    """A crontab day-of-week field in APScheduler 3's terms.

    APScheduler 3 reads numbers as 0 = Monday (agronholm/apscheduler#286, fixed only in 4.x),
    so `CronTrigger.from_crontab("0 3 * * 1-5")` would tick Tuesday to Saturday. Numeric
    items become lists of day names; names and `*` pass through unchanged.
    """
    items = []
    for item in field_text.split(","):
        match = _CRON_DOW_ITEM.match(item)
        if match is None or item == "*":
            items.append(item)  # names, or something APScheduler will reject clearly
            continue
        first, last, step = match.groups()
        start = int(first) if first is not None else 0
        stop = int(last) if last is not None else (start if first is not None and not step else 7)
        days = range(start, stop + 1, int(step) if step else 1)
        if not days or stop > 7:
            raise ValueError(f"bad day of week {item!r}")
        items.append(",".join(_CRON_WEEKDAYS[day] for day in days))
    return ",".join(items)


def make_trigger(settings: Settings) -> BaseTrigger:
    """The tick trigger: SYNCD_TICK_CRON (UTC) if set, else every SYNCD_TICK_SECONDS."""
    if settings.tick_cron:
        try:
            fields = settings.tick_cron.split()
            if len(fields) != 5:
                raise ValueError(f"expected 5 fields, got {len(fields)}")
            minute, hour, day, month, day_of_week = fields
            return CronTrigger(
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=crontab_day_of_week(day_of_week),
                timezone=UTC,
            )
        except ValueError as exc:
            raise ValueError(f"{env_name('tick_cron')}: {exc}") from None
    if settings.tick_seconds <= 0:
        raise ValueError(f"{env_name('tick_seconds')} must be positive")
    return IntervalTrigger(seconds=settings.tick_seconds, start_date=GRID_ANCHOR, timezone=UTC)


def tick_period(trigger: BaseTrigger, now: datetime) -> timedelta:
    """The gap between the next two fire times (a cron schedule's gaps may vary)."""
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first) if first else None
    if first is None or second is None:
        raise ValueError("the tick schedule never fires again")
    return second - first


def misfire_grace_seconds(trigger: BaseTrigger, now: datetime) -> int:
    """Half a period: a tick late by less still runs; a later one waits for the next tick."""
    return max(1, int(tick_period(trigger, now).total_seconds() / 2))


def previous_fire_time(trigger: BaseTrigger, now: datetime) -> datetime:
    """The latest fire time at or before `now`: the tick a job started at `now` belongs to."""
    window = timedelta(seconds=1)
    while window < timedelta(days=1000):
        fire = trigger.get_next_fire_time(None, now - window)
        if fire is not None and fire <= now:
            while True:
                following = trigger.get_next_fire_time(fire, fire)
                if following is None or following > now:
                    return fire
                fire = following
        window *= 4
    raise ValueError(f"the tick schedule has not fired before {now.isoformat()}")


def tick_id_for(fire_time: datetime) -> str:
    return fire_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _due_before(settings: Settings, now: datetime) -> datetime:
    """A last attempt at or before this instant makes a catalog due at `now`."""
    interval = timedelta(seconds=settings.refresh_interval_seconds)
    return now - interval + min(MAX_DUE_SLACK, interval / 10)


def _skip_reason(row: Any, due_before: datetime) -> str | None:
    """Why the tick leaves this catalog alone; None when it is due.

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
    pending = _pending_since(row)
    if pending is not None:
        return REASON_ENQUEUED if pending > due_before else None
    attempt = _utc_or_none(row.last_update_attempt)
    if attempt is not None and attempt > due_before:
        return REASON_RECENT
    return None


def _pending_since(row: Any) -> datetime | None:
    """When the scheduler enqueued an update that no worker has started; None if none."""
    enqueued = _utc_or_none(row.update_enqueued_at)
    attempt = _utc_or_none(row.last_update_attempt)
    if enqueued is None or (attempt is not None and attempt >= enqueued):
        return None
    return enqueued


def _mark_enqueued(engine: Engine, catalog_uuid: str, now: datetime) -> None:
    """Record a confirmed enqueue, stamped with the tick's time.

    After the publish, not before: a tick that dies between the two costs one duplicate
    message next tick, whereas a stamp without a message would leave the catalog waiting a
    whole interval for an update nobody enqueued. The tick's time (not the clock after the
    publish) keeps the stamp earlier than the attempt of a worker that starts the message
    before this write commits. A failing write fails the tick like a leader dying mid-tick:
    the catalogs it did not reach go out next tick. `modified` is kept as it is: this
    bookkeeping is not a change an API client could see.
    """
    with engine.begin() as conn:
        conn.execute(
            update(Catalog)
            .where(Catalog.uuid == uuid_module.UUID(catalog_uuid))
            .values(update_enqueued_at=now, modified=Catalog.modified)
        )


def forget_enqueued(engine: Engine) -> None:
    """Clear every catalog's pending enqueue (its message cannot exist any more)."""
    with engine.begin() as conn:
        conn.execute(
            update(Catalog)
            .where(Catalog.update_enqueued_at.is_not(None))
            .values(update_enqueued_at=None, modified=Catalog.modified)
        )


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
    due_before = _due_before(settings, now)
    for row in rows:
        ref = CatalogRef(uuid=str(row.uuid), name=row.name, version=row.version)
        reason = _skip_reason(row, due_before)
        if reason is not None:
            _skip(result, ref, reason)
            continue
        result.due.append(ref)
        if _pending_since(row) is not None:
            result.presumed_lost.append(ref)
    for ref in result.due:
        if result.broker_unavailable:
            # Each try would wait out the publish deadline again: 50 due catalogs behind a
            # frozen broker would make one tick take 50 deadlines and overlap the next ones.
            _skip(result, ref, REASON_PUBLISH_FAILED, NOT_TRIED)
        elif _publish(broker, settings, ref, result):
            result.enqueued.append(ref)
            _mark_enqueued(engine, ref.uuid, now)


def _skip(result: TickResult, ref: CatalogRef, reason: str, detail: str | None = None) -> None:
    """Record why the tick leaves `ref` alone; the metric counts the reason without detail
    (an exception's text would make a new series per failure)."""
    result.skipped.append((ref, reason if detail is None else f"{reason}: {detail}"))
    SCHEDULER_SKIPPED.labels(reason=reason).inc()


def _publish(
    broker: dramatiq.Broker, settings: Settings, ref: CatalogRef, result: TickResult
) -> bool:
    """Publish update_catalog for `ref`; False (and the reason recorded) when it failed."""
    from syncd.publish import publish_update

    try:
        publish_update(broker, settings, catalog_uuid=ref.uuid)
    except Exception as exc:
        _skip(result, ref, REASON_PUBLISH_FAILED, str(exc))
        if _broker_unavailable(exc):
            result.broker_unavailable = True
        return False
    return True


def _broker_unavailable(exc: Exception) -> bool:
    """Whether a failed publish says the broker is out of reach, not that this message failed.

    Out of reach: no confirm within the deadline (PublishTimeout), or no connection at all
    (refused, lost, authentication: pika's AMQPConnectionError, which Dramatiq wraps in its
    ConnectionClosed after its own reconnect attempts; a bare socket error). Every later
    publish of the tick would fail the same way, after the same wait. Anything else goes on
    to the next catalog: a message that cannot be built, a middleware refusing it, or the
    broker answering this publish with a nack, "unroutable" or a channel error. There the
    broker did answer, so the next publish costs milliseconds and may well succeed.
    """
    from dramatiq.errors import ConnectionClosed
    from pika.exceptions import AMQPConnectionError

    from syncd.publish import PublishTimeout

    cause = exc.__cause__
    if isinstance(cause, ConnectionClosed):
        cause = cause.message  # the pika error Dramatiq gave up on
    return isinstance(cause, PublishTimeout | AMQPConnectionError | OSError)


# --- follow upstream -----------------------------------------------------------------------
#
# Choice: the scheduler creates the new catalog row itself (name, version and catalog_type
# from the adapter, auto_update_enabled and source_url copied from the newest existing
# catalog of that name; the insert is guarded by the unique constraint) and then publishes
# update_catalog for it, whose first run fills it. Publishing import_catalog instead would
# leave the worker to create the row with the default auto_update_enabled, and copying the
# flag would need a message field the contract does not have. That first update is how the
# new catalog is imported, so it is enqueued even when the copied flag is false; later ticks
# leave such a catalog alone like every disabled one. If the publish fails the empty row is
# deleted again, so the next tick retries the whole step.
#
# Discover asks the source of the latest-made catalog of that name (a mirror, say). Only
# versions that upstream lists *above* a version we already have are new. An adapter
# with no catalog in the database is not followed (the site never imported it), and neither
# is one whose upstream list contains none of our versions: an upstream with a single moving
# version label (Spack) is kept current by update_catalog, not by a new catalog per label.


def _follow_upstream(
    engine: Engine,
    broker: dramatiq.Broker,
    settings: Settings,
    now: datetime,
    adapters: Mapping[str, Any] | None,
    fetcher: Any,
    result: TickResult,
) -> None:
    own_fetcher = None
    try:
        if adapters is None:
            from adapters.base import load_adapters

            adapters = load_adapters(settings)
        if fetcher is None:
            from adapters.fetch import Fetcher

            fetcher = own_fetcher = Fetcher(settings)
        for adapter in adapters.values():
            if result.broker_unavailable:
                # Discovering would download upstream lists for catalogs nobody can enqueue.
                result.not_followed[adapter.name] = NOT_TRIED
                continue
            reason = _follow_one(engine, broker, settings, now, adapter, fetcher, result)
            if reason:
                result.not_followed[adapter.name] = reason
    except Exception as exc:  # adapters are plugins: a broken one must not stop the tick
        result.not_followed["*"] = f"follow upstream failed: {type(exc).__name__}: {exc}"
    finally:
        if own_fetcher is not None:
            own_fetcher.close()


def _follow_one(
    engine: Engine,
    broker: dramatiq.Broker,
    settings: Settings,
    now: datetime,
    adapter: Any,
    fetcher: Any,
    result: TickResult,
) -> str | None:
    """Create and enqueue catalogs for new upstream versions; the reason when it did not."""
    catalog_type = str(adapter.catalog_type)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Catalog.version, Catalog.auto_update_enabled, Catalog.source_url)
            .where(Catalog.name == adapter.name, Catalog.catalog_type == catalog_type)
            .order_by(Catalog.id)
        ).all()
    existing = {row.version: row for row in rows}
    if not existing:
        return "no catalog of this name"
    try:
        # Ask where our catalogs come from (an air-gapped site's file:// mirror, say), not
        # necessarily the adapter's default.
        versions = list(adapter.discover(fetcher, source=rows[-1].source_url or None))
    except Exception as exc:
        return f"discover failed: {exc}"
    listed = [v for v in versions if v in existing]
    if not listed:
        return "upstream lists none of our versions"
    newest = existing[listed[0]]
    new_versions = versions[: versions.index(listed[0])]
    for version in reversed(new_versions):  # oldest first: the newest row is created last
        if result.broker_unavailable:
            return NOT_TRIED  # the versions left are created by a later tick
        ref = _create_catalog(engine, adapter.name, version, catalog_type, newest)
        if ref is None:
            continue  # created meanwhile by someone else (an import through the API, ...)
        if _publish(broker, settings, ref, result):
            result.created.append(ref)
            _mark_enqueued(engine, ref.uuid, now)
        else:
            _delete_unattempted(engine, ref.uuid)
    return None


def _create_catalog(
    engine: Engine, name: str, version: str, catalog_type: str, newest: Any
) -> CatalogRef | None:
    new_uuid = uuid_module.uuid4()
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Catalog).values(
                    uuid=new_uuid,
                    name=name,
                    version=version,
                    catalog_type=catalog_type,
                    auto_update_enabled=newest.auto_update_enabled,
                    source_url=newest.source_url,
                )
            )
    except IntegrityError:
        return None
    return CatalogRef(uuid=str(new_uuid), name=name, version=version)


def _delete_unattempted(engine: Engine, catalog_uuid: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            delete(Catalog).where(
                Catalog.uuid == uuid_module.UUID(catalog_uuid),
                Catalog.last_update_attempt.is_(None),
            )
        )


# --- leader election -----------------------------------------------------------------------


class AdvisoryLeader:
    """Leadership = holding a PostgreSQL session-level advisory lock.

    The lock lives as long as the session, so it is held on a connection of its own (a
    NullPool engine: never handed to other code, never recycled by a pool) that stays open
    while this process leads. A standby holds no connection between attempts.
    """

    def __init__(self, database_url: str, *, key: tuple[int, int] = LEADER_LOCK_KEY) -> None:
        self.key = key
        self._engine = make_engine(
            database_url,
            poolclass=NullPool,
            connect_args={
                "connect_timeout": 5,
                "application_name": "syncd-scheduler-leader",
                # Notice a dead server or network within about 25 s on our side.
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
        )
        self._conn: Connection | None = None
        self._guard = threading.Lock()
        self._standby_logged = False

    @property
    def is_leader(self) -> bool:
        return self._conn is not None

    def ensure(self) -> bool:
        """True if this process holds the lock now: checks a held lock, else tries to get it."""
        with self._guard:
            if self._conn is not None:
                if self._still_held(self._conn):
                    return True
                self._drop()
                log.warning("scheduler_leadership_lost", lock_key=list(self.key))
            acquired = self._try_acquire()
            if acquired:
                log.info("scheduler_leadership_acquired", lock_key=list(self.key))
            elif not self._standby_logged:
                # Once per spell as standby, so an operator sees which replica waits.
                log.info("scheduler_standby", lock_key=list(self.key))
            self._standby_logged = not acquired
            return acquired

    def release(self) -> None:
        with self._guard:
            if self._conn is not None:
                # Closing the session below releases the lock anyway.
                with contextlib.suppress(DBAPIError):
                    self._conn.execute(
                        text("SELECT pg_advisory_unlock(:a, :b)"),
                        {"a": self.key[0], "b": self.key[1]},
                    )
                self._drop()
                log.info("scheduler_leadership_released", lock_key=list(self.key))
            self._engine.dispose()

    def _try_acquire(self) -> bool:
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except DBAPIError as exc:
            log.warning("scheduler_leader_connect_failed", error=str(exc.orig or exc))
            return False
        try:
            # Our own session settings: the server notices a vanished leader within about
            # 25 s even without a FIN (host crash, cut network) and frees the lock, and a
            # server-wide idle_session_timeout does not end the idle lock connection.
            for setting in ("idle = 10", "interval = 5", "count = 3"):
                conn.execute(text(f"SET tcp_keepalives_{setting}"))
            if conn.dialect.server_version_info and conn.dialect.server_version_info >= (14,):
                conn.execute(text("SET idle_session_timeout = 0"))
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": self.key[0], "b": self.key[1]}
            ).scalar_one()
        except DBAPIError as exc:
            log.warning("scheduler_leader_attempt_failed", error=str(exc.orig or exc))
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _still_held(self, conn: Connection) -> bool:
        try:
            held = conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid() AND granted AND classid = :a"
                    " AND objid = :b AND objsubid = 2)"
                ),
                {"a": self.key[0], "b": self.key[1]},
            ).scalar_one()
        except DBAPIError:
            return False
        return bool(held)

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.close()
            self._conn = None


def make_leader(settings: Settings) -> AdvisoryLeader | None:
    """The election for PostgreSQL; None (always lead) for SQLite, where one process ticks."""
    return None if settings.is_sqlite else AdvisoryLeader(settings.database_url)


# --- the processes -------------------------------------------------------------------------


def make_tick_job(
    engine: Engine,
    broker: dramatiq.Broker,
    settings: Settings,
    trigger: BaseTrigger,
    leader: AdvisoryLeader | None,
) -> Callable[[], None]:
    """The APScheduler job: find the tick's fire time, lead or stand by, run the tick."""

    def tick() -> None:
        fire_time = previous_fire_time(trigger, datetime.now(UTC))
        tick_id = tick_id_for(fire_time)
        if leader is not None and not leader.ensure():
            SCHEDULER_TICKS.labels(outcome="standby").inc()
            log.debug("scheduler_standby", tick_id=tick_id)
            return
        try:
            run_tick(engine, broker, settings, now=fire_time, tick_id=tick_id)
        except Exception:
            SCHEDULER_TICKS.labels(outcome="failed").inc()
            log.exception("scheduler_tick_failed", tick_id=tick_id)

    return tick


def add_tick_job(
    scheduler: BaseScheduler,
    engine: Engine,
    broker: dramatiq.Broker,
    settings: Settings,
    leader: AdvisoryLeader | None,
) -> None:
    trigger = make_trigger(settings)
    grace = misfire_grace_seconds(trigger, datetime.now(UTC))
    scheduler.add_job(
        make_tick_job(engine, broker, settings, trigger, leader),
        trigger,
        id=TICK_JOB_ID,
        name="auto-update tick",
        # A scheduler that was stalled runs the latest missed tick once (if it is not older
        # than the grace), never a burst of them; a slow tick is never run twice at once.
        coalesce=True,
        misfire_grace_time=grace,
        max_instances=1,
        replace_existing=True,
    )
    log.info(
        "scheduler_started",
        trigger=str(trigger),
        misfire_grace_seconds=grace,
        refresh_interval_seconds=settings.refresh_interval_seconds,
        follow_upstream=settings.follow_upstream,
        election="postgresql advisory lock" if leader is not None else "none (sqlite)",
    )


class InProcessScheduler(BackgroundScheduler):
    """The scheduler thread of `syncd run`; shutting it down also gives up leadership."""

    def __init__(self, leader: AdvisoryLeader | None, **options: Any) -> None:
        super().__init__(**options)
        self.leader = leader

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)
        if self.leader is not None:
            self.leader.release()


def start_in_process(settings: Settings, engine: Engine, broker: dramatiq.Broker) -> BaseScheduler:
    """Start ticking in a background thread of this process (`syncd run`); the caller stops
    it with `.shutdown()`. On PostgreSQL it still takes part in the election."""
    from dramatiq.brokers.stub import StubBroker

    if isinstance(broker, StubBroker):
        # The in-process queue starts empty and dies with its process: whatever an earlier
        # process enqueued into its own queue is gone, so waiting out the bound would leave
        # those catalogs stale for up to a refresh interval after a restart.
        forget_enqueued(engine)
    scheduler = InProcessScheduler(make_leader(settings), timezone=UTC, daemon=True)
    add_tick_job(scheduler, engine, broker, settings, scheduler.leader)
    scheduler.start()
    return scheduler


def run_scheduler(settings: Settings) -> int:
    """`syncd scheduler`: tick in the foreground until SIGTERM or SIGINT; 0 on a clean stop."""
    from syncd.broker import make_broker, needs_broker_url
    from syncd.metrics_server import start_metrics_server

    if settings.uses_embedded_queue:
        # Its ticks would go into a queue of its own that no worker reads, and each catalog
        # would then wait a whole refresh interval as "already enqueued".
        print(needs_broker_url("scheduler"), file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    broker = make_broker(settings)
    leader = make_leader(settings)
    executor = ThreadPoolExecutor(max_workers=1)
    scheduler = BlockingScheduler(timezone=UTC, executors={"default": executor})
    add_tick_job(scheduler, engine, broker, settings, leader)
    start_metrics_server(settings)

    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("scheduler_stopping", signal=signal.Signals(signum).name)
        # From another thread: the handler may have interrupted the main loop while it held
        # a (non-reentrant) lock of the executor. The main loop returns once this is done; a
        # tick in flight is awaited below.
        threading.Thread(target=scheduler.shutdown, kwargs={"wait": False}).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.start()  # blocks until stop()
        executor.shutdown(wait=True)  # a tick in flight finishes its publishes
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if leader is not None:
            leader.release()
        broker.close()
        engine.dispose()
    log.info("scheduler_stopped")
    return 0
