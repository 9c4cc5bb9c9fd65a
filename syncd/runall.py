"""`syncd run`: the API, a worker and the scheduler in one process.

The embedded default (no configuration) is a SQLite file in the working directory and an
in-process queue; SYNCD_DATABASE_URL and SYNCD_BROKER_URL point the same process at
PostgreSQL and RabbitMQ instead. One engine and one broker are shared by all three parts, so
the in-process queue the API publishes to is the one the worker consumes.

Shutdown (SIGINT or SIGTERM): the HTTP server stops accepting and finishes its requests,
then the scheduler stops ticking, then the worker gets SYNCD_SHUTDOWN_TIMEOUT_SECONDS to
finish the commands it is running. With RabbitMQ anything unfinished stays unacknowledged
and is redelivered. The in-process queue keeps its accepted commands in the database
(pending_command, syncd/broker/embedded.py): at shutdown each unfinished one gets a
`command_unfinished` line, an attempt the stop cut off is marked failed ("Interrupted by
shutdown") on its catalog and in its outcome, so it no longer reads as running; the next
`syncd run` queues them all again (`command_resumed`) before it serves.
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

import uvicorn

from syncd.config import Settings
from syncd.logging import get_logger, uvicorn_log_config

log = get_logger(__name__)

INTERRUPTED = (
    "Interrupted by shutdown: `syncd run` stopped while this attempt was running; the "
    "command runs again when `syncd run` starts."
)


def run_all(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    from syncd import scheduler as scheduler_module
    from syncd import worker as worker_module
    from syncd.api.app import create_app, freeze_startup_heap
    from syncd.api.send_timeout import protocol_with_deadlines
    from syncd.broker import make_broker, resume_pending
    from syncd.db.engine import make_engine
    from syncd.db.migrate import upgrade

    started = time.monotonic()
    # The embedded default must work on a fresh folder with one command: migrating is
    # idempotent and cheap at head.
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    broker = make_broker(settings, engine=engine)
    worker: Any = None
    scheduler: Any = None
    stop_signals: list[int] = []
    previous = _install_stop_handlers(stop_signals)
    try:
        worker = worker_module.start_in_process(settings, broker, engine)
        # Before the API and the scheduler add new ones: the oldest commands run first.
        resume_pending(broker, settings.queue_name)
        if settings.scheduler_enabled:
            scheduler = scheduler_module.start_in_process(settings, engine, broker)
        # The API builds an engine of its own: its statements are time-limited, the
        # worker's syncs must not be.
        app = create_app(settings, broker=broker)
        freeze_startup_heap()
        bind_host = host or settings.api_host
        bind_port = port if port is not None else settings.api_port
        log.info(
            "run_started",
            host=bind_host,
            port=bind_port,
            database=engine.url.render_as_string(hide_password=True),
            queue="rabbitmq" if settings.broker_url else "in-process",
            scheduler=settings.scheduler_enabled,
            seconds=round(time.monotonic() - started, 3),
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=bind_host,
                port=bind_port,
                log_config=uvicorn_log_config(),
                timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
                http=protocol_with_deadlines(
                    settings.api_header_timeout_seconds, settings.api_send_timeout_seconds
                ),
            )
        )
        # uvicorn handles SIGINT/SIGTERM while it serves and re-raises them once it has
        # stopped; our handlers (installed above) turn them into "stop the rest" below.
        server.run()
        served = server.started
    finally:
        _shutdown(settings, scheduler=scheduler, worker=worker, broker=broker, engine=engine)
        engine.dispose()
        _restore_handlers(previous)
    log.info("run_stopped", signals=[signal.Signals(s).name for s in stop_signals])
    return 0 if served else 1


def _shutdown(settings: Settings, *, scheduler: Any, worker: Any, broker: Any, engine: Any) -> None:
    if scheduler is not None:
        try:
            scheduler.shutdown(wait=False)
        except Exception:
            log.exception("scheduler_shutdown_failed")
    if worker is not None:
        log.info("worker_stopping", timeout_seconds=settings.shutdown_timeout_seconds)
        try:
            worker.stop(timeout=settings.shutdown_timeout_seconds * 1000)
        except Exception:
            log.exception("worker_shutdown_failed")
        try:
            _report_unfinished(broker, engine)
        except Exception:
            log.exception("unfinished_commands_not_reported")
    from syncd.broker import close_at_shutdown

    try:
        close_at_shutdown(broker)
    except Exception:
        log.exception("broker_close_failed")


def _report_unfinished(broker: Any, engine: Any) -> None:
    """One line per command of the in-process queue left unfinished; an attempt the stop cut
    off is marked failed on its catalog and in its outcome (not final: it runs again)."""
    from syncd import service
    from syncd.broker import catalog_context, unfinished
    from syncd.outcomes import record_outcome

    for left in unfinished(broker):
        command = left.command
        if left.cut_off:
            service.record_abandoned(engine, command.actor, command.kwargs, INTERRUPTED)
            record_outcome(
                engine,
                command.message_id,
                command.actor,
                succeeded=False,
                final=False,
                error=INTERRUPTED,
            )
        log.warning(
            "command_unfinished",
            message_id=command.message_id,
            actor=command.actor,
            **catalog_context(command.kwargs),
            state="interrupted" if left.cut_off else "queued",
            resumes="when syncd run starts again",
        )


def _install_stop_handlers(received: list[int]) -> dict[int, Any]:
    def handler(sig: int, _frame: FrameType | None) -> None:
        received.append(sig)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)
