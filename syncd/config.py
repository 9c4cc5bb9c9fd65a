"""Settings from SYNCD_* environment variables.

With nothing set, syncd runs on its embedded default: a SQLite file in the working
directory and an in-process queue. Every variable is listed in README.md; `SETTINGS_DOC`
below is the single source of that table (docs/gen_config_table.py writes it into README.md).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

DEFAULT_DATABASE_URL = "sqlite:///syncd.sqlite3"
DEFAULT_MAX_FIELD_CHARS = 65_536
# The shrink guard (syncd/sync/shrink.py): an update may remove at most this fraction of a
# catalog's packages; 1.0 or more turns the guard off.
DEFAULT_MAX_SHRINK_FRACTION = 0.5
# Not a setting: `syncd worker --processes N` sets it to "0" in all its children but the
# first, so that a process group runs one events relay (syncd.broker.middleware.EventsRelay).
WORKER_RELAY_ENV = "SYNCD_WORKER_EVENTS_RELAY"


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r} (use true or false)")


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = ""
    queue_name: str = "syncd"
    publish_timeout_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "auto"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    anonymous_read: bool = True
    max_body_bytes: int = 1_000_000
    discover_cache_seconds: int = 300
    public_url: str = ""
    api_threads: int = 40
    api_cache_seconds: float = 300.0
    api_statement_timeout_ms: int = 5_000
    api_send_timeout_seconds: float = 30.0
    api_pool_timeout_seconds: float = 5.0
    api_cache_wait_seconds: float = 5.0
    api_header_timeout_seconds: float = 10.0
    cors_origins: list[str] = field(default_factory=list)
    cors_allow_credentials: bool = False

    refresh_interval_seconds: int = 86_400
    tick_seconds: int = 86_400
    tick_cron: str = ""
    follow_upstream: bool = False
    retention_days: int = 0
    run_retention_days: int = 180
    scheduler_enabled: bool = True

    worker_processes: int = 1
    worker_threads: int = 4
    max_retries: int = 5
    delivery_limit: int = 3
    min_backoff_ms: int = 5_000
    max_backoff_ms: int = 600_000
    time_limit_ms: int = 1_200_000
    shutdown_timeout_seconds: int = 60
    metrics_port: int = 0
    # Scraped from other hosts (Prometheus, a pod monitor): every interface by default.
    metrics_host: str = "0.0.0.0"
    events_exchange: str = "syncd.events"
    events_poll_seconds: float = 1.0

    fetch_connect_timeout: float = 10.0
    fetch_read_timeout: float = 60.0
    fetch_retries: int = 3
    fetch_max_bytes: int = 256 * 1024 * 1024
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    max_shrink_fraction: float = DEFAULT_MAX_SHRINK_FRACTION
    allowed_redirect_hosts: list[str] = field(default_factory=list)
    allow_file_sources: bool = False
    allow_private_sources: bool = False
    cache_dir: str = ""

    eessi_source: str = "https://www.eessi.io/api_data/data/"
    eessi_extensions: bool = True
    spack_source: str = (
        "https://raw.githubusercontent.com/spack/packages.spack.io/gh-pages/data/repology.json"
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_embedded_queue(self) -> bool:
        return not self.broker_url


SETTINGS_DOC: dict[str, str] = {
    "database_url": "SQLAlchemy URL of the database; postgresql+psycopg://... in production",
    "broker_url": "amqp:// URL of RabbitMQ; empty = in-process queue (embedded default)",
    "queue_name": "Dramatiq queue that carries import/update commands",
    "publish_timeout_seconds": "how long publishing a command waits for RabbitMQ's confirm "
    "before the API answers 503 (the scheduler tries again next tick)",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "json, console, or auto (console on a terminal, JSON otherwise)",
    "api_host": "address the HTTP API binds to",
    "api_port": "port of the HTTP API",
    "anonymous_read": "whether GET/HEAD need no token",
    "max_body_bytes": "largest request body the API accepts from a token holder (an anonymous "
    "write is answered 401 without its body being read)",
    "discover_cache_seconds": "how long discover results are cached",
    "public_url": "base URL used for `url` fields; empty = taken from the request",
    "api_threads": "threads that run the API's handlers; the API's database pool keeps as "
    "many connections open",
    "api_cache_seconds": "how long anonymous GET/HEAD answers of the API are reused at most "
    "(per process); every committed change to the data, by any process, clears the cache "
    "(PostgreSQL: LISTEN/NOTIFY; SQLite: data_version), so this only bounds memory "
    "turnover; 0 = off",
    "api_statement_timeout_ms": "longest one database statement of an API request may run; "
    "a read that takes longer is cancelled in the database and answered 503 (deleting a "
    "catalog is exempt); 0 = no limit. Text filters are capped at 200 characters, "
    "multi-valued filters at 50 values and `o` at 10 terms (400 past them)",
    "api_send_timeout_seconds": "how long a client may take none of its answer (the "
    "connection's buffers stay full) before the API resets the connection; a client that "
    "keeps reading, however slowly, keeps it",
    "api_pool_timeout_seconds": "how long a request waits for a database connection of the "
    "API's pool before it is answered 503 with Retry-After",
    "api_cache_wait_seconds": "how long an anonymous read waits for the same read in "
    "progress to fill the response cache before it computes its own answer",
    "api_header_timeout_seconds": "how long a client may take to send a request's headers "
    "before the API answers 408 and closes the connection",
    "cors_origins": "comma-separated origins (`https://waldur.example.org`) whose web pages may "
    "call the API from a browser (CORS: preflight OPTIONS answered, X-Result-Count, Link and "
    "Retry-After readable); `*` = any origin, without credentials; empty = no CORS headers",
    "cors_allow_credentials": "whether those pages may also send cookies or HTTP "
    "authentication (`Access-Control-Allow-Credentials`); a token in the Authorization header "
    "needs no credentials; refused together with `*`",
    "refresh_interval_seconds": "a catalog is due for auto-update when its last attempt is older",
    "tick_seconds": "scheduler tick period (ignored when tick_cron is set)",
    "tick_cron": "crontab expression (UTC) for the scheduler tick, e.g. '0 3 * * *'; read "
    "as crontab does (see Schedule and retention)",
    "follow_upstream": "scheduler also imports new upstream versions as new catalogs",
    "retention_days": "once a day the scheduler deletes auto-updated catalogs whose last "
    "successful update is older than this many days; 0 = never (Waldur's default is 90)",
    "run_retention_days": "the scheduler deletes the sync runs (and their changes) that "
    "started more than this many days ago; 0 = keep them all",
    "scheduler_enabled": "whether `syncd run` starts the scheduler",
    "worker_processes": "worker processes of `syncd worker`",
    "worker_threads": "threads per worker process",
    "max_retries": "retries of a transient failure before the message is dead-lettered",
    "delivery_limit": "times a worker may die (killed, out of memory) while running one message; "
    "the next delivery dead-letters it instead of running it (a poison message)",
    "min_backoff_ms": "first retry delay",
    "max_backoff_ms": "cap of the exponential retry delay (below RabbitMQ's consumer_timeout)",
    "time_limit_ms": "hard time limit of one command",
    "shutdown_timeout_seconds": "how long a stopping worker waits for running commands",
    "metrics_port": "port for /metrics of worker and scheduler; 0 = off",
    "metrics_host": "address of the worker's and scheduler's /metrics; 127.0.0.1 = local only",
    "events_exchange": "RabbitMQ topic exchange that receives syncd's events (catalog.created, "
    "catalog.deleted, catalog.synced, catalog.sync_failed; docs/events.md), published by the "
    "relay of `syncd worker` and `syncd run`; on the embedded default they go to the log; "
    "empty = off (events wait in the outbox, unpublished)",
    "events_poll_seconds": "how often the events relay looks for new events in the outbox",
    "fetch_connect_timeout": "upstream connect timeout, seconds",
    "fetch_read_timeout": "upstream read timeout, seconds",
    "fetch_retries": "retries of a transient upstream failure inside one attempt",
    "fetch_max_bytes": "largest upstream body accepted, counted after unpacking gzip (whether "
    "the server announced it or the file itself is gzip)",
    "max_field_chars": "longest upstream text value stored (a description, any string inside "
    "metadata); a longer one is cut to this length and named in the catalog's update_errors "
    "(the sync still succeeds)",
    "max_shrink_fraction": "an update that would remove more than this fraction of a catalog's "
    "packages or versions is refused, nothing written, reason in update_errors, not retried "
    "(a truncated upstream); `syncd update --force` overrides it once; 1.0 or more = off",
    "allowed_redirect_hosts": "comma-separated extra hosts upstream redirects may go to",
    "allow_file_sources": "allow file:// sources (air-gapped mirrors)",
    "allow_private_sources": "allow sources on loopback/private networks",
    "cache_dir": "where conditional-request bodies are cached; empty = none",
    "eessi_source": "base URL (or file:// folder) of the EESSI API data",
    "eessi_extensions": "also read EESSI's extension files (python, r, perl, ...)",
    "spack_source": "URL (or file:// path) of Spack's repology.json",
}


# Settings that are a number of seconds which must be positive and finite.
POSITIVE_SECONDS = (
    "publish_timeout_seconds",
    "api_header_timeout_seconds",
    "api_send_timeout_seconds",
    "api_pool_timeout_seconds",
    "api_cache_wait_seconds",
    "events_poll_seconds",
)
# Fractions (0.5 = half): finite and not negative.
FRACTIONS = ("max_shrink_fraction",)
# Whole-number settings that must not be negative.
NON_NEGATIVE = ("retention_days", "run_retention_days", "api_statement_timeout_ms")
# Whole-number settings that must be 1 or more.
POSITIVE = ("max_field_chars",)
# Text settings with a fixed set of values (compared case-insensitively, stored as listed).
CHOICES = {
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_format": ("json", "console", "auto"),
}


def env_name(field_name: str) -> str:
    return "SYNCD_" + field_name.upper()


def _choice(raw: str, allowed: tuple[str, ...]) -> str:
    for value in allowed:
        if raw.strip().lower() == value.lower():
            return value
    raise ValueError(f"must be one of {', '.join(allowed)}, not {raw!r}")


def check_positive_seconds(value: float) -> None:
    """ValueError unless `value` is a positive, finite number (callers name the variable)."""
    # float() accepts "nan" and "inf"; neither is a deadline.
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a positive number of seconds, not {value}")


# A browser's Origin header: scheme, host and optional port, nothing else.
_ORIGIN = re.compile(r"https?://[^/?#\s]+", re.IGNORECASE)


def check_cors(origins: list[str], allow_credentials: bool) -> None:
    """ValueError for a CORS setting that would let pages read what they must not.

    `*` never goes with credentials: it would let any site send a user's cookies and read the
    answers (browsers refuse `*` with credentials, so servers that allow both echo the
    caller's origin instead, which is the same hole). An origin is `scheme://host[:port]`,
    as browsers send it; "null" (sandboxed frames, file:// pages) is never one."""
    if "*" in origins:
        if len(origins) > 1:
            raise ValueError("SYNCD_CORS_ORIGINS: `*` stands alone (it already allows any origin)")
        if allow_credentials:
            raise ValueError(
                "SYNCD_CORS_ALLOW_CREDENTIALS cannot be true while SYNCD_CORS_ORIGINS is `*`: "
                "any site could then send a user's credentials; list the origins instead"
            )
        return
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"SYNCD_CORS_ORIGINS: {origin!r} is not an origin; write scheme://host[:port] "
                "with no path or trailing slash (https://waldur.example.org)"
            )


# AMQP 0-9-1's exchange names; `amq.` is reserved to the broker.
_EXCHANGE = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


def check_exchange(name: str) -> None:
    """ValueError for an exchange name RabbitMQ would refuse (the relay would fail for ever)."""
    if not name:
        return
    if not _EXCHANGE.fullmatch(name) or name.startswith("amq."):
        raise ValueError(
            f"SYNCD_EVENTS_EXCHANGE: {name!r} is not an exchange name RabbitMQ accepts "
            "(letters, digits, - _ . : up to 255 characters, not starting with amq.)"
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from SYNCD_* variables; a malformed value is a clear ValueError."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = env.get(env_name(f.name))
        if raw is None:
            continue
        default = getattr(Settings(), f.name)
        try:
            if isinstance(default, bool):
                values[f.name] = _bool(raw)
            elif isinstance(default, int):
                values[f.name] = whole = int(raw)
                if f.name in NON_NEGATIVE and whole < 0:
                    raise ValueError(f"must be 0 or more, not {whole}")
                if f.name in POSITIVE and whole < 1:
                    raise ValueError(f"must be 1 or more, not {whole}")
            elif isinstance(default, float):
                values[f.name] = number = float(raw)
                if f.name in POSITIVE_SECONDS:
                    check_positive_seconds(number)
                if f.name in FRACTIONS and not (math.isfinite(number) and number >= 0):
                    raise ValueError(f"must be a fraction of 0 or more, not {raw!r}")
            elif isinstance(default, list):
                values[f.name] = _list(raw)
            elif f.name in CHOICES:
                values[f.name] = _choice(raw, CHOICES[f.name])
            else:
                values[f.name] = raw
        except ValueError as exc:
            raise ValueError(f"{env_name(f.name)}: {exc}") from None
    settings = Settings(**values)  # type: ignore[arg-type]
    check_cors(settings.cors_origins, settings.cors_allow_credentials)
    check_exchange(settings.events_exchange)
    return settings
