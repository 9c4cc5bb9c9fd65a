"""The worker: Dramatiq actors that run import/update commands from the queue.

An actor parses nothing itself (the consumer checked the message against the contract, see
syncd.broker.ValidatingConsumer), calls syncd.service and turns the outcome into Dramatiq's
retry decision: a transient failure raises dramatiq.Retry (capped exponential backoff by the
Retries middleware, then the dead-letter queue once SYNCD_MAX_RETRIES are spent), a permanent
one raises PermanentFailure, which the actors declare in `throws`, so it is dead-lettered at
once.

`run_worker` is the `syncd worker` process (several processes = one supervisor and N
children); `start_in_process` runs a worker inside `syncd run`.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import CurrentMessage

from syncd import service
from syncd.broker import (
    WorkerResources,
    boot_process,
    check_queue_settings,
    close_at_shutdown,
    dead_letter_count,
    delayed_in_memory,
    log_rejected,
    make_broker,
    needs_broker_url,
    worker_resources,
)
from syncd.config import WORKER_RELAY_ENV, Settings, env_name
from syncd.deliveries import count_death, forget_deaths
from syncd.errors import SyncdError, UpstreamError
from syncd.logging import get_logger
from syncd.metrics import DEAD_LETTERS, QUEUE_DEPTH
from syncd.metrics_server import start_metrics_server
from syncd.outcomes import record_outcome
from syncd.redaction import redact_urls

log = get_logger(__name__)

# How often an idle consumer wakes up (ms): bounds how long stopping takes, not latency
# (a delivery wakes the consumer at once).
WORKER_TIMEOUT_MS = 1000
DEAD_LETTER_POLL_SECONDS = 30.0
DELAYED_POLL_SECONDS = 1.0
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_REASON_CHARS = 1000


class PermanentFailure(Exception):
    """A command failed in a way that retrying cannot fix (bad data, unknown catalog, no
    adapter, a bug). The actors list it in `throws`: Retries dead-letters it at once."""


# --- actors -----------------------------------------------------------------------------


def declare_actors(
    broker: dramatiq.Broker, settings: Settings
) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare `import_catalog` and `update_catalog` on `broker` (queue settings.queue_name).

    The actors are closures over the broker's WorkerResources, so they take only the
    message's kwargs; the resources are opened when the worker boots.
    """
    resources = worker_resources(broker)

    def import_catalog(
        name: str, version: str | None = None, source: str | None = None, force: bool = False,
        trigger: str = service.TRIGGER_DEFAULT,
    ) -> None:  # fmt: skip
        _run(
            settings, resources, service.import_catalog,
            name=name, version=version, source=source, force=force, trigger=trigger,
        )  # fmt: skip

    def update_catalog(
        catalog_uuid: str, force: bool = False, keep_missing: bool = False,
        allow_shrink: bool = False, trigger: str = service.TRIGGER_DEFAULT,
    ) -> None:  # fmt: skip
        _run(
            settings, resources, service.update_catalog,
            catalog_uuid=catalog_uuid, force=force, keep_missing=keep_missing,
            allow_shrink=allow_shrink, trigger=trigger,
        )  # fmt: skip

    actors: dict[str, dramatiq.Actor[Any, Any]] = {}
    for fn in (import_catalog, update_catalog):
        declare = dramatiq.actor(
            broker=broker,
            actor_name=fn.__name__,
            queue_name=settings.queue_name,
            throws=(PermanentFailure,),
        )
        actors[fn.__name__] = declare(fn)
    return actors


def _run(
    settings: Settings,
    resources: WorkerResources,
    command: Callable[..., service.CommandResult],
    **kwargs: Any,
) -> None:
    """Run one attempt of a service command; turn its failure into Dramatiq's retry decision."""
    message = CurrentMessage.get_current_message()
    retries = int(message.options.get("retries", 0)) if message is not None else 0
    will_retry = retries < settings.max_retries
    outcome = _outcome_recorder(resources, message)
    if _dead_letter_poison(settings, resources, message, outcome):
        return
    try:
        result = command(
            resources.engine,
            resources.adapters if resources.adapters is not None else {},
            resources.fetcher,
            will_retry=will_retry,
            # Who published it (kwarg `trigger`) and which message: the attempt's run row.
            run=service.RunContext(kwargs.pop("trigger"), message.message_id if message else ""),
            **kwargs,
        )
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        # The service already logged the failure and wrote update_errors.
        # Short texts: Dramatiq stores the traceback in a retried message's options, and the
        # contract caps a message at 256 KiB.
        # Redacted: the text is logged by Dramatiq and kept in the retried message's options.
        text = redact_urls(f"{type(exc).__name__}: {str(exc)[:MAX_REASON_CHARS]}")
        transient = service.is_transient(exc)
        if outcome is not None:
            reason = exc.message if isinstance(exc, SyncdError) else text
            outcome(succeeded=False, final=not (transient and will_retry), error=reason)
        if transient:
            raise dramatiq.Retry(text, delay=_retry_delay(exc, settings)) from exc
        raise PermanentFailure(text) from exc
    if outcome is not None:
        outcome(succeeded=True, final=True, catalog_uuid=result.catalog_uuid)


def _dead_letter_poison(
    settings: Settings,
    resources: WorkerResources,
    message: Any,
    outcome: Callable[..., None] | None,
) -> bool:
    """Whether this delivery goes to the dead-letter queue instead of running: its worker
    died more than SYNCD_DELIVERY_LIMIT times while running it (syncd/deliveries.py).

    Only a delivery RabbitMQ marks `redelivered` is counted, so a first delivery costs no
    query. A count that cannot be taken (database down) lets the command run: it then fails
    on the database and is retried like any other transient failure.
    """
    if message is None or resources.engine is None or not getattr(message, "redelivered", False):
        return False
    try:
        deaths = count_death(resources.engine, message.message_id)
    except Exception as exc:
        log.warning("delivery_not_counted", error=str(exc).splitlines()[0])
        return False
    if deaths <= settings.delivery_limit:
        log.info("message_redelivered", deaths=deaths, delivery_limit=settings.delivery_limit)
        return False
    reason = f"worker died {deaths} times while processing it"
    log_rejected(
        settings.queue_name,
        message.actor_name,
        message.message_id,
        reason,
        error="DeliveryLimitExceeded",
        deaths=deaths,
        delivery_limit=settings.delivery_limit,
        redelivered=True,
    )
    text = (
        f"Dead-lettered without running again: the worker died {deaths} times while "
        f"processing this command (killed, out of memory?), more than "
        f"{env_name('delivery_limit')}={settings.delivery_limit}."
    )
    service.record_abandoned(resources.engine, message.actor_name, message.kwargs, text)
    if outcome is not None:
        outcome(succeeded=False, final=True, error=text)
    try:
        forget_deaths(resources.engine, message.message_id)
    except Exception as exc:  # a redrive then dead-letters it after one death, not N
        log.warning("delivery_not_counted", error=str(exc).splitlines()[0])
    # Once the actor returns, Dramatiq nacks a failed message: RabbitMQ dead-letters it.
    message.fail()
    return True


def _outcome_recorder(resources: WorkerResources, message: Any) -> Callable[..., None] | None:
    """Stores this attempt's outcome for `syncd import|update --wait` (syncd/outcomes.py);
    None when there is no delivered message or no database."""
    if message is None or resources.engine is None:
        return None
    return functools.partial(
        record_outcome, resources.engine, message.message_id, message.actor_name
    )


def _retry_delay(exc: BaseException, settings: Settings) -> int | None:
    """Honour an upstream's Retry-After within the backoff bounds; else Dramatiq's backoff."""
    if isinstance(exc, UpstreamError) and exc.retry_after:
        wanted = int(exc.retry_after * 1000)
        return max(settings.min_backoff_ms, min(wanted, settings.max_backoff_ms))
    return None


# --- running a worker -------------------------------------------------------------------


def _start_worker(broker: dramatiq.Broker, settings: Settings, threads: int) -> dramatiq.Worker:
    # Open the resources here, not only in the before_worker_boot hook: Dramatiq logs and
    # swallows a hook's exception, and a worker whose adapters failed to load would
    # dead-letter every command as "no adapter". Failing to start is the better outcome.
    worker_resources(broker).open()
    boot_process(broker)
    if isinstance(broker, RabbitmqBroker):
        # Declare the queues on the server now rather than in the consumer thread a moment
        # later, so that once the worker says it started, a producer's publish with
        # `mandatory` finds them. RabbitMQ down: the consumer keeps retrying on its own.
        try:
            broker.declare_queue(settings.queue_name, ensure=True)
        except ConnectionClosed as exc:
            log.warning("queue_not_declared", queue=settings.queue_name, error=str(exc))
    worker = dramatiq.Worker(
        broker,
        queues={settings.queue_name},
        worker_threads=threads,
        worker_timeout=WORKER_TIMEOUT_MS,
    )
    # Dramatiq prefetches 2 x threads by default; a prefetched message then waits unacked
    # behind running ones and can pass RabbitMQ's 30-minute consumer_timeout before its own
    # run even starts. One per thread keeps every delivery's unacked time = its run time.
    worker.queue_prefetch = threads
    worker.start()
    log.info(
        "worker_started",
        queue=settings.queue_name,
        threads=threads,
        broker=type(broker).__name__,
        pid=os.getpid(),
    )
    return worker


def start_in_process(settings: Settings, broker: dramatiq.Broker, engine: Any) -> dramatiq.Worker:
    """A worker inside the calling process (`syncd run`), on `broker`, using `engine`.

    The caller stops it with `worker.stop(timeout_ms)`; the engine stays the caller's.
    """
    worker_resources(broker).provide(engine=engine)
    declare_actors(broker, settings)
    return _start_worker(broker, settings, settings.worker_threads)


def run_worker(settings: Settings, processes: int | None = None, threads: int | None = None) -> int:
    """The `syncd worker` process; returns its exit code.

    SIGTERM/SIGINT stop it gracefully: no new messages are taken, running commands get
    SYNCD_SHUTDOWN_TIMEOUT_SECONDS to finish, and whatever is still unacked then goes back to
    the queue when the connection closes (RabbitMQ redelivers it to another worker).
    """
    processes = settings.worker_processes if processes is None else processes
    threads = settings.worker_threads if threads is None else threads
    if settings.uses_embedded_queue:
        print(needs_broker_url("worker"), file=sys.stderr)
        return 2
    if processes < 1 or threads < 1:
        print("syncd: --processes and --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        check_queue_settings(settings)
    except ValueError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return 2
    if processes > 1:
        return _supervise(settings, processes, threads)
    return _run_single(settings, threads)


def _stop_event() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        log.info("worker_stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _run_single(settings: Settings, threads: int) -> int:
    stop = _stop_event()
    broker = make_broker(settings)
    # A child of a supervisor (several processes) leaves serving /metrics to its parent.
    export_metrics = start_metrics_server(settings) or bool(os.environ.get(MULTIPROC_ENV))
    declare_actors(broker, settings)
    try:
        worker = _start_worker(broker, settings, threads)
    except Exception as exc:
        log.error("worker_start_failed", error_class=type(exc).__name__, error=str(exc))
        print(f"syncd: the worker cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2  # adapters or fetcher cannot be built: configuration, not bad luck
    delayed = QUEUE_DEPTH.labels(queue=settings.queue_name, state="delayed")
    dead_letters_read = time.monotonic()
    try:
        while not stop.wait(DELAYED_POLL_SECONDS):
            if not export_metrics:
                continue
            # In memory, so cheap to read often; the dead letters cost a connection.
            delayed.set(delayed_in_memory(broker))
            if time.monotonic() - dead_letters_read >= DEAD_LETTER_POLL_SECONDS:
                dead_letters_read = time.monotonic()
                count = dead_letter_count(settings)
                if count is not None:
                    DEAD_LETTERS.labels(queue=settings.queue_name).set(count)
    finally:
        started = time.monotonic()
        worker.stop(timeout=settings.shutdown_timeout_seconds * 1000)
        close_at_shutdown(broker)
        log.info("worker_stopped", seconds=round(time.monotonic() - started, 3))
    return 0


def _supervise(settings: Settings, processes: int, threads: int) -> int:
    """Run `processes` single-process workers as children; restart one that dies; forward
    SIGTERM/SIGINT and wait for them (SIGKILL after the shutdown timeout plus a margin).

    With metrics on, the children write their samples to PROMETHEUS_MULTIPROC_DIR (a
    temporary folder unless set) and this process serves the sum (syncd.metrics_server).
    """
    stop = _stop_event()
    command = [sys.executable, "-m", "syncd.cli", "worker", "--processes", "1"]
    command += ["--threads", str(threads)]
    child_env = dict(os.environ)
    metrics_dir: tempfile.TemporaryDirectory[str] | None = None
    if settings.metrics_port:
        if not os.environ.get(MULTIPROC_ENV):
            metrics_dir = tempfile.TemporaryDirectory(prefix="syncd-metrics-")
            os.environ[MULTIPROC_ENV] = metrics_dir.name
        child_env[MULTIPROC_ENV] = os.environ[MULTIPROC_ENV]
        child_env[env_name("metrics_port")] = "0"
        start_metrics_server(settings)

    def spawn(index: int) -> subprocess.Popen[bytes]:  # the first child runs the events relay
        return subprocess.Popen(command, env={**child_env, WORKER_RELAY_ENV: str(int(index == 0))})

    children = [spawn(index) for index in range(processes)]
    log.info("worker_supervisor_started", processes=processes, pids=[c.pid for c in children])
    try:
        while not stop.wait(1.0):
            for index, child in enumerate(children):
                code = child.poll()
                if code is None:
                    continue
                log.warning("worker_child_exited", pid=child.pid, exit_code=code)
                if code == 2:  # a configuration error: every restart would fail the same way
                    _stop_children(children, settings.shutdown_timeout_seconds + 10)
                    return 2
                children[index] = spawn(index)
        return _stop_children(children, settings.shutdown_timeout_seconds + 10)
    finally:
        if metrics_dir is not None:
            metrics_dir.cleanup()


def _stop_children(children: list[subprocess.Popen[bytes]], timeout: float) -> int:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    exit_code = 0
    for child in children:
        try:
            code = child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker_child_killed", pid=child.pid)
            child.kill()
            code = child.wait()
        if code not in (0, -signal.SIGTERM):
            exit_code = 1
    return exit_code
