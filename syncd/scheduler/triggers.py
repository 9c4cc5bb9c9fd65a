"""When ticks fire, and the tick id every replica derives from the fire time.

Kept apart from the tick itself: replicas only agree on a tick because they compute its
id from the same schedule arithmetic, which needs no database and no broker.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config import Settings, env_name

# Interval ticks sit on a grid anchored here, so replicas started at different times agree
# on the fire times (a daily tick fires at 00:00 UTC).
GRID_ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)


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


def _day_restricted(field_text: str) -> bool:
    # crontab(5) (Vixie cron, cronie): a day field starting with "*", `*/2` too, is
    # unrestricted; only when both day fields are restricted does either one suffice.
    return not field_text.startswith("*")


def cron_trigger(expression: str) -> BaseTrigger:
    """A five-field crontab expression (UTC) as crontab reads it.

    With both day-of-month and day-of-week restricted (`0 3 1 * 1`), crontab fires on a day
    that matches either field, while APScheduler's CronTrigger wants both: such an
    expression becomes an OrTrigger of one trigger per day field, whose next fire time is
    the earlier of the two (a day matching both fires once).
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    minute, hour, day, month, day_of_week = fields
    weekdays = crontab_day_of_week(day_of_week)

    def cron(day_field: str, weekday_field: str) -> CronTrigger:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day_field,
            month=month,
            day_of_week=weekday_field,
            timezone=UTC,
        )

    if _day_restricted(day) and _day_restricted(day_of_week):
        return OrTrigger([cron(day, "*"), cron("*", weekdays)])
    return cron(day, weekdays)


def make_trigger(settings: Settings) -> BaseTrigger:
    """The tick trigger: SYNCD_TICK_CRON (UTC) if set, else every SYNCD_TICK_SECONDS."""
    if settings.tick_cron:
        try:
            return cron_trigger(settings.tick_cron)
        except ValueError as exc:
            raise ValueError(f"{env_name('tick_cron')}: {exc}") from None
    if settings.tick_seconds <= 0:
        raise ValueError(f"{env_name('tick_seconds')} must be positive")
    return IntervalTrigger(seconds=settings.tick_seconds, start_date=GRID_ANCHOR, timezone=UTC)


def next_fire_times(trigger: BaseTrigger, start: datetime, count: int) -> list[datetime]:
    """The first `count` fire times at or after `start` (fewer if the schedule ends)."""
    times: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and len(times) < count:
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return times


def tick_period(trigger: BaseTrigger, now: datetime) -> timedelta:
    """The gap between the next two fire times (a cron schedule's gaps may vary)."""
    times = next_fire_times(trigger, now, 2)
    if len(times) < 2:
        raise ValueError("the tick schedule never fires again")
    return times[1] - times[0]


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
