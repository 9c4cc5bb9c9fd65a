"""Body of `syncd schedule`: the next ticks of the configured trigger, and when each catalog
with auto-update on is next due and which tick will enqueue it.

Read-only and broker-free: it derives everything from settings and the catalog rows with
the scheduler's own trigger and due rule, so what it prints is what the scheduler will do
(as long as nothing changes in between: a worker's attempt, a manual update). The parser
takes its argument types from here, so this module imports nothing heavy at its top.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from syncd.cli.common import _engine, _error
from syncd.config import Settings


def positive_count(text: str) -> int:
    """argparse type of --next: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def utc_instant(text: str) -> datetime:
    """argparse type of --from: an ISO 8601 instant; one without an offset is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2027-02-01T03:00:00+00:00)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def schedule_command(settings: Settings, args: argparse.Namespace) -> int:
    """`syncd schedule [--next N] [--from ISO]`: the next N ticks, then each auto-updated
    catalog with its due time and the tick that will enqueue it."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from syncd.db.tables import Catalog
    from syncd.metrics import catalog_label
    from syncd.scheduler.ticks import next_due, pending_since
    from syncd.scheduler.triggers import make_trigger, next_fire_times

    start: datetime = args.start or datetime.now(UTC)
    trigger = make_trigger(settings)  # main() has refused a bad expression already
    for fire in next_fire_times(trigger, start, args.next):
        print(fire.isoformat())

    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    Catalog.name,
                    Catalog.version,
                    Catalog.last_update_attempt,
                    Catalog.update_enqueued_at,
                )
                .where(Catalog.auto_update_enabled.is_(True))
                .order_by(Catalog.name, Catalog.version)
            ).all()
    except SQLAlchemyError as exc:
        _error(f"cannot read the catalogs ({type(exc).__name__}); has `syncd migrate` run?")
        return 1
    finally:
        engine.dispose()

    table = [("CATALOG", "DUE", "ENQUEUED BY THE TICK AT")]
    for row in rows:
        due = next_due(settings, row.last_update_attempt, row.update_enqueued_at)
        due_text = "now" if due is None or due <= start else due.isoformat()
        if pending_since(row) is not None:
            due_text += " (an update is already enqueued)"
        ticks = next_fire_times(trigger, max(start, due or start), 1)
        table.append(
            (
                catalog_label(row.name, row.version),
                due_text,
                ticks[0].isoformat() if ticks else "(the schedule never fires again)",
            )
        )
    print()
    if len(table) == 1:
        print("no catalog has auto-update on")
        return 0
    widths = [max(len(line[i]) for line in table) for i in range(2)]
    for name, due_text, tick in table:
        print(f"{name.ljust(widths[0])}  {due_text.ljust(widths[1])}  {tick}")
    return 0
