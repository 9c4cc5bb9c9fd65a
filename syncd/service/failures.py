"""Why a command failed, in words an operator reads, and whether trying again may help.

Kept apart from the database steps: the worker asks `is_transient` to decide on a retry, and a
failure before any catalog row exists still needs its log line and counters.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from syncd import metrics
from syncd.domain import SyncStats
from syncd.errors import SyncdError
from syncd.logging import get_logger

log = get_logger(__name__)


# update_errors is a TEXT column, but an operator reads it in a web page: keep it readable.
MAX_ERROR_CHARS = 4000


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same command later may succeed."""
    if isinstance(exc, SyncdError):
        return exc.transient
    if isinstance(exc, OperationalError | DisconnectionError | PoolTimeoutError):
        return True  # database gone, restarting, or out of connections
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    # Dramatiq's TimeLimitExceeded (an Interrupt, not an Exception): a slow upstream or a
    # busy database may be faster next time. Matched by name: the service knows no queue.
    return type(exc).__name__ == "TimeLimitExceeded"


def describe_error(exc: BaseException, stage: str) -> str:
    """The update_errors text: what failed, where, why."""
    if isinstance(exc, SyncdError):
        text = exc.message
    elif type(exc).__name__ == "TimeLimitExceeded":
        text = f"{_STAGES[stage]} did not finish within the worker's time limit and was stopped"
    elif isinstance(exc, DBAPIError):
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        text = f"{_STAGES[stage]} failed: database error {type(exc.orig).__name__}: {detail}"
    else:
        text = f"{_STAGES[stage]} failed: {type(exc).__name__}: {exc or 'no detail'}"
    return text[:MAX_ERROR_CHARS]


def describe_warnings(stats: SyncStats | None) -> str:
    """The update_errors text of a success that could not store everything upstream offers
    as it is; "" for a clean one."""
    if stats is None or not stats.warnings:
        return ""
    text = "Updated, but not all upstream data could be stored as it is: " + " ".join(
        stats.warnings
    )
    return text[:MAX_ERROR_CHARS]


_STAGES = {
    "resolve": "Finding the adapter",
    "mark": "Recording the attempt in the database",
    "fetch": "Fetching the upstream data",
    "sync": "Writing the catalog into the database",
    "finish": "Recording the result in the database",
}


def _failed_before_marking(
    exc: BaseException, actor: str, label: str, stage: str, will_retry: bool
) -> None:
    """A command that failed before it had a catalog row: counted as received here (the
    normal path counts it once the row is marked), so that failed never exceeds received."""
    metrics.COMMANDS_RECEIVED.labels(actor=actor, catalog=label).inc()
    _failed(exc, actor, label, stage, will_retry)


def _failed(
    exc: BaseException,
    actor: str,
    label: str,
    stage: str,
    will_retry: bool,
    *,
    text: str | None = None,
) -> None:
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        return
    will_retry = will_retry and is_transient(exc)
    log.warning(
        "command_failed",
        command=actor,
        stage=stage,
        error_class=type(exc).__name__,
        error=text or describe_error(exc, stage),
        will_retry=will_retry,
    )
    metrics.COMMANDS_FAILED.labels(
        actor=actor, catalog=label, error=type(exc).__name__, will_retry=str(will_retry).lower()
    ).inc()


def _retry_note(exc: BaseException, will_retry: bool) -> str:
    return " (will retry)" if will_retry and is_transient(exc) else ""
