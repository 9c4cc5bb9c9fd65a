"""The Dramatiq broker of every syncd process, built in one place.
Guarantees: checked queue settings, one middleware order, confirmed and bounded publishes.
Does not declare actors (syncd.worker) nor build or send messages (syncd.publish).

`make_broker(settings)` returns a RabbitmqBroker for SYNCD_BROKER_URL (publisher confirms and
heartbeats on; syncd's publishes bounded by SYNCD_PUBLISH_TIMEOUT_SECONDS) or, for the
embedded default (no broker URL), an in-process broker that `syncd run` shares between its
API, scheduler and worker, and that keeps accepted commands in the database until they are
done (resumed when `syncd run` starts again: syncd/broker/embedded.py). Building a broker
connects to nothing: the API starts while RabbitMQ is down and publishing then fails with a
clear error.

The middleware list and its order live in `build_middleware` only. Worker resources (engine,
adapters, fetcher) are a middleware too, as in Polar's server/: they are built when a worker
boots and closed when it stops, so processes that only publish never open them.

Actors are declared by syncd.worker.declare_actors; publishing needs none (syncd.publish).
"""

from syncd.broker.construction import (
    NoQueueBroker,
    check_queue_settings,
    close_at_shutdown,
    make_broker,
    make_publisher_broker,
    needs_broker_url,
    with_url_defaults,
)
from syncd.broker.consumer import ValidatingConsumer, log_rejected
from syncd.broker.dead_letters import dead_letter_count
from syncd.broker.embedded import (
    EmbeddedBroker,
    PendingCommands,
    Unfinished,
    resume_pending,
    unfinished,
)
from syncd.broker.middleware import (
    LogContext,
    WorkerResources,
    boot_process,
    catalog_context,
    delayed_in_memory,
    worker_resources,
)
from syncd.broker.rabbitmq import SyncdRabbitmqBroker

__all__ = [
    "EmbeddedBroker",
    "LogContext",
    "NoQueueBroker",
    "PendingCommands",
    "SyncdRabbitmqBroker",
    "Unfinished",
    "ValidatingConsumer",
    "WorkerResources",
    "boot_process",
    "catalog_context",
    "check_queue_settings",
    "close_at_shutdown",
    "dead_letter_count",
    "delayed_in_memory",
    "log_rejected",
    "make_broker",
    "make_publisher_broker",
    "needs_broker_url",
    "resume_pending",
    "unfinished",
    "with_url_defaults",
    "worker_resources",
]
