"""The scheduler: auto-update ticks that fire once, however many replicas run.
Guarantees: one run per tick id, and no catalog enqueued again while its update waits.
Does not run updates (workers do) nor keep a job store: ticks are derived from settings.

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
`ticks._skip_reason` for why that bound). An in-process queue dies with its process, so
`start_in_process` forgets the stamps such a queue may have held.

Publish failures: a catalog whose publish fails is skipped ("publish failed: ...") and is
still due at the next tick. Once a publish finds the broker out of reach (no confirm within
SYNCD_PUBLISH_TIMEOUT_SECONDS, connection refused), the tick publishes nothing more, in the
due pass and in follow upstream alike, so a frozen broker costs a tick one deadline rather
than one per due catalog (see `enqueue._broker_unavailable`).

Schedule: SYNCD_TICK_CRON is read as crontab reads it (`triggers.cron_trigger`: weekdays from
Sunday, either day field when both are restricted). Retention (SYNCD_RETENTION_DAYS): the
first claimed tick of a UTC day also claims that day and deletes expired catalogs, before
its due pass (see retention.py).
"""

from syncd.scheduler.leader import AdvisoryLeader
from syncd.scheduler.process import (
    TICK_JOB_ID,
    InProcessScheduler,
    add_tick_job,
    run_scheduler,
    start_in_process,
)
from syncd.scheduler.results import (
    NOT_TRIED,
    REASON_DISABLED,
    REASON_ENQUEUED,
    REASON_PUBLISH_FAILED,
    REASON_RECENT,
    SKIP_REASONS,
    TickResult,
)
from syncd.scheduler.ticks import run_tick
from syncd.scheduler.triggers import (
    crontab_day_of_week,
    make_trigger,
    misfire_grace_seconds,
    previous_fire_time,
    tick_id_for,
)

__all__ = [
    "NOT_TRIED",
    "REASON_DISABLED",
    "REASON_ENQUEUED",
    "REASON_PUBLISH_FAILED",
    "REASON_RECENT",
    "SKIP_REASONS",
    "TICK_JOB_ID",
    "AdvisoryLeader",
    "InProcessScheduler",
    "TickResult",
    "add_tick_job",
    "crontab_day_of_week",
    "make_trigger",
    "misfire_grace_seconds",
    "previous_fire_time",
    "run_scheduler",
    "run_tick",
    "start_in_process",
    "tick_id_for",
]
