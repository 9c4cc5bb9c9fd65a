"""`syncd run`: the API, a worker and the scheduler in one process.

The embedded default (no configuration) is a SQLite file in the working directory and an
in-process queue; SYNCD_DATABASE_URL and SYNCD_BROKER_URL point the same process at
PostgreSQL and RabbitMQ instead. One engine and one broker are shared by all three parts, so
the in-process queue the API publishes to is the one the worker consumes.

Shutdown (SIGINT or SIGTERM): the HTTP server stops accepting and finishes its requests,
then the scheduler stops ticking, then the worker gets SYNCD_SHUTDOWN_TIMEOUT_SECONDS to
finish the commands it is running; anything unfinished stays unacknowledged (RabbitMQ) and
is redelivered, or is lost with the in-process queue, whose catalogs keep their previous
data and are picked up again by the next scheduler tick.
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


def run_all(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    from syncd import scheduler as scheduler_module
    from syncd import worker as worker_module
    from syncd.api.app import create_app
    from syncd.api.header_timeout import protocol_with_header_timeout
    from syncd.broker import make_broker
    from syncd.db.engine import make_engine
    from syncd.db.migrate import upgrade

    started = time.monotonic()
    # The embedded default must work on a fresh folder with one command: migrating is
    # idempotent and cheap at head.
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    broker = make_broker(settings)
    worker: Any = None
    scheduler: Any = None
    stop_signals: list[int] = []
    previous = _install_stop_handlers(stop_signals)
    try:
        worker = worker_module.start_in_process(settings, broker, engine)
        if settings.scheduler_enabled:
            scheduler = scheduler_module.start_in_process(settings, engine, broker)
        app = create_app(settings, engine=engine, broker=broker)
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
                http=protocol_with_header_timeout(settings.api_header_timeout_seconds),
            )
        )
        # uvicorn handles SIGINT/SIGTERM while it serves and re-raises them once it has
        # stopped; our handlers (installed above) turn them into "stop the rest" below.
        server.run()
        served = server.started
    finally:
        _shutdown(settings, scheduler=scheduler, worker=worker, broker=broker)
        engine.dispose()
        _restore_handlers(previous)
    log.info("run_stopped", signals=[signal.Signals(s).name for s in stop_signals])
    return 0 if served else 1


def _shutdown(settings: Settings, *, scheduler: Any, worker: Any, broker: Any) -> None:
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
    from syncd.broker import close_at_shutdown

    try:
        close_at_shutdown(broker)
    except Exception:
        log.exception("broker_close_failed")


def _install_stop_handlers(received: list[int]) -> dict[int, Any]:
    def handler(sig: int, _frame: FrameType | None) -> None:
        received.append(sig)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)
