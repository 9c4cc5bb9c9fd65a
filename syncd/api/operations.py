"""Operations endpoints of the API: /health, /ready and /metrics.

- /health: the process is up and answering (liveness). It touches nothing else, so a slow
  database never gets a healthy API process restarted, and it runs on the event loop: busy
  handler threads (clients waiting for the database) do not delay it either.
- /ready: the database and the broker are reachable (readiness); 503 names what failed, so
  a load balancer stops sending traffic the API cannot serve.
- /metrics: Prometheus text. Counters and histograms are updated where the work happens;
  the gauges that describe shared state (dead-letter queue depth, last success per catalog,
  the events outbox's backlog)
  are refreshed here at scrape time, because any API replica can answer a scrape.

None of them needs a token. They take the engine, broker and settings the app was built with
(`app.state.ctx`, or `app.state.engine` / `.broker` / `.settings`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, select, text

from syncd.broker import delayed_in_memory
from syncd.config import Settings
from syncd.db.tables import Catalog
from syncd.events.relay import backlog
from syncd.logging import get_logger
from syncd.metrics import (
    DEAD_LETTERS,
    EVENTS_BACKLOG,
    LAST_SUCCESS,
    QUEUE_DEPTH,
    SCRAPE_ERRORS,
    catalog_label,
)

router = APIRouter(tags=["operations"])
log = get_logger(__name__)

# A readiness probe must answer well inside the prober's timeout (Kubernetes: 1 s default,
# the chart sets 5 s); a broker that takes longer to accept a connection counts as down.
BROKER_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class _Resources:
    settings: Settings
    engine: Engine
    broker: Any


def _resources(request: Request) -> _Resources:
    state = request.app.state
    ctx = getattr(state, "ctx", None)
    if ctx is not None:
        return _Resources(settings=ctx.settings, engine=ctx.engine, broker=ctx.broker)
    return _Resources(settings=state.settings, engine=state.engine, broker=state.broker)


@router.get("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    # async: a sync handler would wait for a free handler thread.
    return {"status": "ok"}


@router.get("/ready", include_in_schema=False)
def ready(request: Request) -> JSONResponse:
    res = _resources(request)
    checks = {
        "database": _check(lambda: _ping_database(res.engine)),
        "broker": _check(lambda: _ping_broker(res.settings, res.broker)),
    }
    failed = sorted(name for name, outcome in checks.items() if outcome != "ok")
    if failed:
        log.warning("not_ready", failed=failed, checks=checks)
        return JSONResponse(
            status_code=503, content={"status": "unavailable", "failed": failed, "checks": checks}
        )
    return JSONResponse(status_code=200, content={"status": "ready", "checks": checks})


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    res = _resources(request)
    _refresh_last_success(res.engine)
    _refresh_events_backlog(res.engine)
    _refresh_queue_depths(res.settings, res.broker)
    return Response(content=generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _check(probe: Any) -> str:
    """ "ok", or the error class and its first line (never a URL with credentials: neither
    psycopg nor pika put the password into their messages)."""
    try:
        probe()
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first_line}".rstrip(": ")
    return "ok"


def _ping_database(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _is_rabbitmq(settings: Settings, broker: Any) -> bool:
    return bool(settings.broker_url) and hasattr(broker, "parameters")


def _ping_broker(settings: Settings, broker: Any) -> None:
    if broker is None:
        raise RuntimeError("no broker configured")
    if not _is_rabbitmq(settings, broker):
        return  # the in-process queue lives in this process: it is up when we are
    connection = _amqp_connect(settings)
    connection.close()


def _amqp_connect(settings: Settings) -> Any:
    # A connection of its own (not the broker's thread-local one): FastAPI runs these
    # handlers in a thread pool, and a connection left idle per pool thread would miss its
    # heartbeats and be closed by RabbitMQ under the publisher's feet.
    import pika

    candidates = []
    # SYNCD_BROKER_URL may list several nodes separated by ';' (as dramatiq accepts it).
    for url in filter(None, (u.strip() for u in settings.broker_url.split(";"))):
        params = pika.URLParameters(url)
        params.connection_attempts = 1
        params.retry_delay = 0
        params.socket_timeout = BROKER_TIMEOUT_SECONDS
        params.blocked_connection_timeout = BROKER_TIMEOUT_SECONDS
        params.stack_timeout = BROKER_TIMEOUT_SECONDS * 2
        candidates.append(params)
    return pika.BlockingConnection(candidates)


def _refresh_last_success(engine: Engine) -> None:
    """One sample per catalog from the database, the source of truth for every replica.

    A catalog that never succeeded reports 0, so `time() - gauge > threshold` alerts on it
    too; rows of deleted catalogs disappear with the clear().
    """
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Catalog.name, Catalog.version, Catalog.last_successful_update)
            ).all()
    except Exception as exc:
        SCRAPE_ERRORS.labels(source="database").inc()
        log.warning("metrics_refresh_failed", source="database", error=type(exc).__name__)
        return
    LAST_SUCCESS.clear()
    for name, version, last in rows:
        LAST_SUCCESS.labels(catalog=catalog_label(name, version)).set(
            last.timestamp() if last is not None else 0
        )


def _refresh_events_backlog(engine: Engine) -> None:
    """The outbox's unpublished events, from the database (whichever process relays them)."""
    try:
        EVENTS_BACKLOG.set(backlog(engine))
    except Exception as exc:
        SCRAPE_ERRORS.labels(source="database").inc()
        log.warning("metrics_refresh_failed", source="database", error=type(exc).__name__)


def _refresh_queue_depths(settings: Settings, broker: Any) -> None:
    queue = settings.queue_name
    try:
        if _is_rabbitmq(settings, broker):
            main, delayed, dead = _rabbitmq_counts(settings, queue)
        else:
            main, delayed, dead = _stub_counts(broker, queue)
    except Exception as exc:
        SCRAPE_ERRORS.labels(source="broker").inc()
        log.warning("metrics_refresh_failed", source="broker", error=type(exc).__name__)
        return
    # Labelled by the command queue's name, as the worker's own refresh does. The broker
    # counts the retries no worker has taken yet; in `syncd run` this process's own worker
    # holds the others (a `syncd worker` reports those it holds on its own /metrics).
    QUEUE_DEPTH.labels(queue=queue, state="ready").set(main)
    QUEUE_DEPTH.labels(queue=queue, state="delayed").set(delayed + delayed_in_memory(broker))
    DEAD_LETTERS.labels(queue=queue).set(dead)


def _rabbitmq_counts(settings: Settings, queue: str) -> tuple[int, int, int]:
    """Passive declares: they read a queue's depth and never create one."""
    import pika.exceptions

    counts: list[int] = []
    started = time.monotonic()
    connection = _amqp_connect(settings)
    try:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel = connection.channel()
            try:
                frame = channel.queue_declare(queue=name, passive=True)
                counts.append(frame.method.message_count)
                channel.close()
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise
                counts.append(0)  # not declared yet: nothing has ever been queued there
    finally:
        connection.close()
    log.debug("queue_depths_read", seconds=round(time.monotonic() - started, 3))
    return counts[0], counts[1], counts[2]


def _stub_counts(broker: Any, queue: str) -> tuple[int, int, int]:
    """The in-process broker (dramatiq's StubBroker): its queues and dead letters in memory.

    StubBroker keeps dead letters per consumed queue, the delay queue's separately.
    """
    queues = getattr(broker, "queues", {})
    dead_by_queue = getattr(broker, "dead_letters_by_queue", {})

    def size(name: str) -> int:
        q = queues.get(name)
        return int(q.qsize()) if q is not None else 0

    dead = sum(len(dead_by_queue.get(name, ())) for name in (queue, f"{queue}.DQ"))
    return size(queue), size(f"{queue}.DQ"), dead
