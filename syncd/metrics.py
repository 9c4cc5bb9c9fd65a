"""Prometheus metrics, defined once; every process exports the ones it updates.

Names follow Prometheus conventions (`_total` counters, `_seconds` durations). The API serves
them at /metrics; workers and the scheduler on SYNCD_METRICS_PORT.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMANDS_RECEIVED = Counter(
    "syncd_commands_received_total", "Commands taken from the queue", ["actor", "catalog"]
)
COMMANDS_SUCCEEDED = Counter(
    "syncd_commands_succeeded_total", "Commands that finished successfully", ["actor", "catalog"]
)
COMMANDS_FAILED = Counter(
    "syncd_commands_failed_total",
    "Command attempts that failed",
    ["actor", "catalog", "error", "will_retry"],
)
COMMANDS_PUBLISHED = Counter(
    "syncd_commands_published_total", "Commands published (broker confirmed)", ["actor"]
)
SYNC_DURATION = Histogram(
    "syncd_sync_duration_seconds",
    "Time to write one snapshot into the database",
    ["catalog"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
ROWS_WRITTEN = Counter(
    "syncd_rows_written_total", "Rows created, updated or deleted by syncs", ["kind", "operation"]
)
UPSTREAM_BYTES = Counter(
    "syncd_upstream_bytes_total", "Bytes downloaded from upstreams", ["adapter"]
)
UPSTREAM_NOT_MODIFIED = Counter(
    "syncd_upstream_not_modified_total", "Fetches answered 'not modified'", ["adapter"]
)
LAST_SUCCESS = Gauge(
    "syncd_catalog_last_success_timestamp_seconds",
    "Unix time of the last successful update of a catalog",
    ["catalog"],
)
DEAD_LETTERS = Gauge(
    "syncd_dead_letter_queue_depth", "Messages waiting in the dead-letter queue", ["queue"]
)
SCHEDULER_TICKS = Counter(
    "syncd_scheduler_ticks_total", "Scheduler ticks run by this process", ["outcome"]
)
SCHEDULER_ENQUEUED = Counter(
    "syncd_scheduler_enqueued_total", "Updates enqueued by scheduler ticks", []
)
SCHEDULER_SKIPPED = Counter(
    "syncd_scheduler_skipped_total",
    "Catalogs a scheduler tick did not enqueue, by reason (the reason without its detail)",
    ["reason"],
)
QUEUE_DEPTH = Gauge(
    "syncd_queue_depth",
    "Messages in a command queue: state=ready (waiting for a worker) or delayed (a retry "
    "waiting for its backoff: in the broker, or held by this process's worker)",
    ["queue", "state"],
    # `syncd worker --processes N` serves the sum of the retries its processes hold.
    multiprocess_mode="livesum",
)
API_STATEMENT_TIMEOUTS = Counter(
    "syncd_api_statement_timeouts",
    "API database statements cancelled by SYNCD_API_STATEMENT_TIMEOUT_MS (answered 503)",
)
SCRAPE_ERRORS = Counter(
    "syncd_metrics_refresh_errors_total",
    "Scrape-time refreshes (database, broker) that failed; the gauges keep their last values",
    ["source"],
)

EVENTS_PUBLISHED = Counter(
    "syncd_events_published_total",
    "Events the relay sent: destination=rabbitmq (confirmed, marked published) or log (the "
    "embedded default)",
    ["type", "destination"],
)
EVENTS_PUBLISH_FAILED = Counter(
    "syncd_events_publish_failed_total",
    "Event publishes that failed (RabbitMQ down, refused or not confirming); the event stays "
    "in the outbox and is tried again",
    ["type", "destination"],
)
EVENTS_BACKLOG = Gauge(
    "syncd_events_outbox_backlog",
    "Events in the outbox not published yet",
    # One relay per worker process group sets it; the newest value is the relay's.
    multiprocess_mode="mostrecent",
)


# The `actor` label of a message that names no actor syncd runs (a rejected message): the
# actor_name of a message is a producer's arbitrary string, so every such message shares
# this one fixed value instead of making a series of its own.
INVALID_ACTOR = "invalid"

# The `catalog` label of a failure before any catalog row exists (a rejected message, an
# unknown adapter or uuid): the names a message carries are a producer's arbitrary strings,
# and one series each would grow without bound.
UNKNOWN_CATALOG = ""


def catalog_label(name: str, version: str | None) -> str:
    """The value of every `catalog` label: "<name>/<version>", e.g. "EESSI/2023.06".

    Readable on a dashboard and the same in every process; an import whose version is not
    known yet (latest) is "<name>" alone until the adapter names it. Only ever made from a
    catalog row (a known catalog), never from a message's words (UNKNOWN_CATALOG then).
    Text the exposition cannot encode (a lone surrogate) is escaped: one such series would
    make every later scrape of /metrics fail.
    """
    label = f"{name}/{version}" if version else name
    return label.encode("utf-8", "backslashreplace").decode("utf-8")
