"""What one tick reports, and the reasons it may leave a catalog alone.

Its own module because the tick, the enqueue bookkeeping and follow upstream all fill the
same result, and the skip-reason series must be created once, whoever imports first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.metrics import SCHEDULER_SKIPPED

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
    # Retention (SYNCD_RETENTION_DAYS): catalogs this tick deleted, at the day's first tick.
    deleted: list[CatalogRef] = field(default_factory=list)
    # Run retention (SYNCD_RUN_RETENTION_DAYS): sync runs this tick deleted, once a day.
    runs_pruned: int = 0
    # A publish of this tick found the broker out of reach: the tick publishes nothing more.
    broker_unavailable: bool = False
