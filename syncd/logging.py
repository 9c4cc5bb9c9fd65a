"""structlog configuration shared by every process.

One call, `configure_logging(settings, role)`, at process start (the CLI does it before any
subcommand). After it:

- structlog loggers and the stdlib loggers of our libraries (dramatiq, pika, apscheduler,
  uvicorn, alembic, sqlalchemy, warnings) all go through one stdlib handler on stderr whose
  `structlog.stdlib.ProcessorFormatter` renders every line the same way: a JSON object per
  line in production, readable console lines on a terminal (SYNCD_LOG_FORMAT=auto/json/console);
- every line carries `timestamp`, `level`, `event`, `logger`, `role` (the process role: api,
  worker, scheduler, run, ...) and whatever job context is bound in the current context
  (see `bind_job_context`);
- uncaught exceptions (main thread and other threads) are logged as one JSON line too, so a
  log collector never sees a bare traceback;
- no line shows the credentials of a URL (`https://user:pw@host/` is written
  `https://***@host/`, syncd.redaction): every string field, the message of a library's
  record and the traceback text alike, whoever logged it.

Job context keys (use these names so that dashboards and the README agree):
`catalog_uuid`, `catalog_name`, `catalog_version`, `message_id`, `actor`, `tick_id`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from datetime import date, datetime
from types import TracebackType
from typing import Any

import structlog

from syncd.config import Settings
from syncd.redaction import redact_urls, redact_value

# The process role; a module-level value (not a contextvar) because threads started by
# dramatiq, apscheduler or uvicorn begin with an empty context and must still carry it.
_role = "syncd"

JOB_CONTEXT_KEYS = (
    "catalog_uuid",
    "catalog_name",
    "catalog_version",
    "message_id",
    "actor",
    "tick_id",
)

# Libraries whose INFO lines are chatter (pika logs every connection and channel step,
# alembic every plugin it sets up).
# They log at WARNING unless SYNCD_LOG_LEVEL=DEBUG asks for everything.
_NOISY_LOGGERS = ("pika", "alembic.runtime.plugins")

# uvicorn's access log arguments, in the order uvicorn passes them.
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


def _add_role(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    event.setdefault("role", _role)
    return event


def _uvicorn_access_fields(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """Turn uvicorn's access line into fields (method, path, status) a collector can query.

    The formatter hands over a foreign record's arguments as `positional_args` (already
    formatted into `event`); they are dropped from every other line.
    """
    args = event.pop("positional_args", None)
    record = event.get("_record")
    is_access = record is not None and record.name == "uvicorn.access"
    if is_access and isinstance(args, tuple) and len(args) == len(_ACCESS_FIELDS):
        event.update(zip(_ACCESS_FIELDS, args, strict=True))
    return event


class _ThreadCapture(logging.Filter):
    """Holds back the records of chosen loggers logged by the thread that asked for it
    (see `held_back_logs`); every other record, and other threads' records, pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        held: tuple[str, list[logging.LogRecord]] | None = getattr(_held, "value", None)
        if held is None:
            return True
        prefix, records = held
        if record.name == prefix or record.name.startswith(prefix + "."):
            records.append(record)
            return False
        return True


_held = threading.local()
_capture_filter = _ThreadCapture()


@contextmanager
def held_back_logs(prefix: str) -> Iterator[list[logging.LogRecord]]:
    """Hold back what the loggers under `prefix` log in this thread inside the block.

    For a library that logs errors about a failure its caller then recovers from (pika
    about a dead connection that a retry replaces): the caller decides afterwards whether
    the records mean anything, and replays them (`replay_logs`) when they do.
    """
    records: list[logging.LogRecord] = []
    previous = getattr(_held, "value", None)
    _held.value = (prefix, records)
    try:
        yield records
    finally:
        _held.value = previous


def replay_logs(records: list[logging.LogRecord]) -> None:
    """Log records held back by `held_back_logs` after all (outside its block)."""
    for record in list(records):
        logging.getLogger(record.name).handle(record)


def _redact_credentials(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """Hide URL credentials in every string field (the traceback is one by now).

    Last before the renderer, so that nothing added later can bring a credential back; cheap
    for the common line without "://" and "@" (see redact_urls).
    """
    for key, value in event.items():
        if isinstance(value, str):
            if "@" in value and "://" in value:  # redact_urls' own test, without the call
                event[key] = redact_urls(value)
        elif isinstance(value, list | tuple | dict):
            event[key] = redact_value(value)
    return event


def _json_default(value: Any) -> Any:
    """Values json cannot encode: ISO dates, plain strings for UUIDs, paths, enums, ...
    (structlog's own fallback writes repr(), e.g. "UUID('...')", which no query matches)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _level_of(settings: Settings) -> int:
    level = logging.getLevelName(settings.log_level.upper())
    return level if isinstance(level, int) else logging.INFO


def use_json(settings: Settings) -> bool:
    if settings.log_format == "json":
        return True
    if settings.log_format == "console":
        return False
    return not sys.stderr.isatty()


def configure_logging(settings: Settings, role: str) -> None:
    """Configure structlog and stdlib logging for this process; calling it again replaces it."""
    global _role
    _role = role
    level = _level_of(settings)
    as_json = use_json(settings)

    # Applied to structlog events and to foreign stdlib records alike.
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _add_role,
    ]
    renderer: structlog.typing.Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer(default=_json_default)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    # The traceback as a string field, so that its URLs are redacted too (the console
    # renderer prints such a field as it is, plain instead of pretty).
    final: list[structlog.typing.Processor] = [
        structlog.processors.format_exc_info,
        _redact_credentials,
        renderer,
    ]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        pass_foreign_args=True,
        foreign_pre_chain=[
            *shared,
            # stdlib callers may pass job context as `extra=`; nothing else (uvicorn's
            # `color_message` extra would put escape codes into JSON).
            structlog.stdlib.ExtraAdder(allow=(*JOB_CONTEXT_KEYS, "thread_name")),
            _uvicorn_access_fields,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_capture_filter)

    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

    # Libraries that bring their own handlers (uvicorn when given a log config) would print
    # twice or in their own format: strip them and let records propagate to the root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq", "apscheduler", "pika"):
        lib = logging.getLogger(name)
        for old in list(lib.handlers):
            lib.removeHandler(old)
        lib.propagate = True
        lib.setLevel(logging.NOTSET)
    noisy_level = logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(noisy_level)

    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def uvicorn_log_config() -> dict[str, Any] | None:
    """What to pass as uvicorn's `log_config`: None, so that uvicorn keeps our handlers.

    `uvicorn.run(app, ..., log_config=uvicorn_log_config())` - with its default dict config
    uvicorn would install its own handlers and formatters and print plain text lines.
    """
    return None


@contextmanager
def bind_job_context(**context: Any) -> Iterator[None]:
    """Bind job context (catalog_uuid, catalog_name, message_id, actor, tick_id, ...) to every
    log line emitted inside the block, by structlog and by stdlib loggers alike.

    None values are left out, so callers can pass what they know without checks. The context
    is restored on exit, so a worker thread's next message starts clean.
    """
    values = {key: value for key, value in context.items() if value is not None}
    with structlog.contextvars.bound_contextvars(**values):
        yield


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; `get_logger(__name__)` names the module in the `logger` field."""
    return structlog.stdlib.get_logger(name)


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("syncd").critical("uncaught_exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("syncd").critical(
        "uncaught_exception_in_thread",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        extra={"thread_name": thread},
    )
