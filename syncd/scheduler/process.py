"""The scheduler processes: `syncd scheduler` in the foreground, or a thread of `syncd run`.

Wiring only (APScheduler job, election, signals, shutdown), kept away from the tick so
that tests and both processes run the very same `run_tick`.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import Engine

from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.logging import get_logger
from syncd.metrics import SCHEDULER_TICKS
from syncd.scheduler.enqueue import forget_enqueued
from syncd.scheduler.leader import AdvisoryLeader, make_leader
from syncd.scheduler.ticks import run_tick
from syncd.scheduler.triggers import (
    make_trigger,
    misfire_grace_seconds,
    previous_fire_time,
    tick_id_for,
)

if TYPE_CHECKING:
    import dramatiq

log = get_logger(__name__)

TICK_JOB_ID = "syncd-auto-update-tick"


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
