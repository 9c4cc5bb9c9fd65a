"""Publishing import/update commands, and the message contract shared with the worker.

This module is the single source of the contract in docs/messages.md and
docs/message.schema.json: `build_message` makes the envelopes syncd publishes, and
`decode_message` is the check every delivered message passes before the worker runs it (the
RabbitMQ consumer in syncd/broker.py calls it). It needs no actor functions: a message names
its actor by string, so the API and the scheduler publish without importing the worker.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import dramatiq
from dramatiq.common import dq_name

from syncd.config import Settings
from syncd.domain import RUN_TRIGGERS
from syncd.errors import InvalidMessageError, TransientError
from syncd.metrics import COMMANDS_PUBLISHED
from syncd.names import formatting_problem

ACTOR_IMPORT = "import_catalog"
ACTOR_UPDATE = "update_catalog"

# Far above any real command (a few hundred bytes, a few KB with a retry traceback) and far
# below RabbitMQ's own limit: a huge body is a producer bug, not a command.
MAX_MESSAGE_BYTES = 256 * 1024

# The seven fields of a Dramatiq envelope; all are required, no other is allowed.
ENVELOPE_FIELDS = (
    "queue_name",
    "actor_name",
    "args",
    "kwargs",
    "options",
    "message_id",
    "message_timestamp",
)

# Clocks of the process that retried a message and of the one taking it from the delay
# queue may differ a little; an eta this much beyond the longest backoff is still accepted.
ETA_CLOCK_SKEW_MS = 60_000

# 2001-09-09 in milliseconds: a smaller message_timestamp is almost surely in seconds.
MIN_TIMESTAMP_MS = 1_000_000_000_000

_NON_BLANK = re.compile(r"\S")
_UUID_RE = re.compile(
    r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)


def _is_int(value: Any) -> bool:
    # As JSON Schema's "integer": 5 and 5.0 are integers, true is not.
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _text(max_length: int, *, nullable: bool) -> Callable[[Any], str | None]:
    """A checker for a string kwarg; returns why the value is wrong, or None."""

    def check(value: Any) -> str | None:
        if value is None:
            return None if nullable else "must be a string, not null"
        if not isinstance(value, str):
            return f"must be a string{' or null' if nullable else ''}, not {_json_type(value)}"
        if not _NON_BLANK.search(value):  # the schema's "pattern": "\\S"
            return "must not be empty or blank"
        problem = _unstorable(value)
        if problem:
            return problem
        if len(value) > max_length:
            return f"is {len(value)} characters long; the limit is {max_length}"
        return None

    return check


def _catalog_name(max_length: int) -> Callable[[Any], str | None]:
    """A catalog name: text as `_text` checks it, without invisible or bidirectional
    formatting characters (syncd.names: the API and the CLI refuse the same)."""
    check_text = _text(max_length, nullable=False)

    def check(value: Any) -> str | None:
        problem = check_text(value)
        if problem is None and formatting_problem(value):
            return "contains invisible or bidirectional formatting characters"
        return problem

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {_json_type(value)}"


def _unstorable(value: str) -> str | None:
    """Why PostgreSQL, a log line or a metric label cannot take `value` (the API refuses the
    same: syncd.api.schemas): a lone surrogate is no Unicode text, NUL no PostgreSQL text."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (invalid Unicode)"
    return None


def _trigger(value: Any) -> str | None:
    if value in RUN_TRIGGERS and isinstance(value, str):
        return None
    return f"must be one of {', '.join(RUN_TRIGGERS)}, not {json.dumps(value)[:40]}"


def _catalog_uuid(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {_json_type(value)}"
    if not _UUID_RE.match(value):
        return "is not a uuid (32 hex digits, with or without hyphens)"
    return None


# The kwargs each actor accepts: name -> (required, checker). Limits are the column sizes of
# the catalog table. docs/message.schema.json says the same; a test keeps them in agreement.
ACTOR_KWARGS: dict[str, dict[str, tuple[bool, Callable[[Any], str | None]]]] = {
    ACTOR_IMPORT: {
        "name": (True, _catalog_name(100)),
        "version": (False, _text(50, nullable=True)),
        "source": (False, _text(2000, nullable=True)),
        "force": (False, _boolean),
        "trigger": (False, _trigger),
    },
    ACTOR_UPDATE: {
        "catalog_uuid": (True, _catalog_uuid),
        "force": (False, _boolean),
        "keep_missing": (False, _boolean),
        "allow_shrink": (False, _boolean),
        "trigger": (False, _trigger),
    },
}

# Options Dramatiq itself writes into a message it retries (Retries middleware) or delays
# (`eta`, on the delay queue only). Any other option could override the worker's retry or
# time-limit policy from outside (max_retries, time_limit, ...), so it is refused.
_OPTION_CHECKS: dict[str, Callable[[Any], bool]] = {
    "retries": lambda v: _is_int(v) and v >= 0,
    "eta": _is_int,
    "traceback": lambda v: isinstance(v, str),
    "requeue_timestamp": _is_int,
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_kwargs(actor_name: str, kwargs: Mapping[str, Any]) -> None:
    """Raise InvalidMessageError saying what is wrong with an actor's kwargs."""
    spec = ACTOR_KWARGS.get(actor_name)
    if spec is None:
        known = ", ".join(sorted(ACTOR_KWARGS))
        raise InvalidMessageError(f"unknown actor {actor_name!r} (this worker runs {known})")
    unknown = sorted(set(kwargs) - set(spec))
    if unknown:
        raise InvalidMessageError(
            f"{actor_name} got unexpected kwargs {', '.join(unknown)} "
            f"(it accepts {', '.join(spec)})"
        )
    for key, (required, check) in spec.items():
        if key not in kwargs:
            if required:
                raise InvalidMessageError(f"{actor_name} needs the kwarg {key!r}")
            continue
        problem = check(kwargs[key])
        if problem:
            raise InvalidMessageError(f"{actor_name} kwarg {key!r} {problem}")


def check_envelope(fields: Any, *, queue_name: str, max_delay_ms: int | None = None) -> None:
    """Raise InvalidMessageError unless `fields` is an envelope the worker can run.

    `queue_name` is the queue the message was delivered from: a message whose queue_name
    names another queue would confuse Dramatiq's bookkeeping (it acks through the consumer of
    the queue the message names). `max_delay_ms`: the longest retry backoff
    (SYNCD_MAX_BACKOFF_MS); an eta further ahead is refused (None: not checked).
    """
    if not isinstance(fields, dict):
        raise InvalidMessageError(f"the body is {_json_type(fields)}, not a JSON object")
    missing = [f for f in ENVELOPE_FIELDS if f not in fields]
    if missing:
        raise InvalidMessageError(f"the envelope lacks {', '.join(missing)}")
    extra = sorted(set(fields) - set(ENVELOPE_FIELDS))
    if extra:
        raise InvalidMessageError(f"the envelope has unknown fields {', '.join(extra)}")
    if fields["queue_name"] != queue_name:
        raise InvalidMessageError(
            f"queue_name is {fields['queue_name']!r} but the message came from {queue_name!r}"
        )
    if not isinstance(fields["actor_name"], str):
        raise InvalidMessageError("actor_name must be a string")
    if fields["args"] != []:
        raise InvalidMessageError("args must be an empty array (actors take kwargs only)")
    if not isinstance(fields["kwargs"], dict):
        raise InvalidMessageError(f"kwargs is {_json_type(fields['kwargs'])}, not an object")
    if not isinstance(fields["options"], dict):
        raise InvalidMessageError(f"options is {_json_type(fields['options'])}, not an object")
    for key, value in fields["options"].items():
        check_option = _OPTION_CHECKS.get(key)
        if check_option is None:
            allowed = ", ".join(_OPTION_CHECKS)
            raise InvalidMessageError(f"option {key!r} is not accepted (allowed: {allowed})")
        if not check_option(value):
            raise InvalidMessageError(f"option {key!r} has a wrong type")
    if "eta" in fields["options"]:
        _check_eta(fields["options"]["eta"], queue_name, max_delay_ms)
    message_id = fields["message_id"]
    if not isinstance(message_id, str) or not 1 <= len(message_id) <= 200:
        raise InvalidMessageError("message_id must be a string of 1 to 200 characters")
    if _unstorable(message_id):
        raise InvalidMessageError(f"message_id {_unstorable(message_id)}")
    timestamp = fields["message_timestamp"]
    if not _is_int(timestamp):
        raise InvalidMessageError("message_timestamp must be an integer (milliseconds)")
    if timestamp < MIN_TIMESTAMP_MS:
        raise InvalidMessageError(
            f"message_timestamp {timestamp} is not in milliseconds since the epoch"
        )
    check_kwargs(fields["actor_name"], fields["kwargs"])


def _check_eta(eta: int, queue_name: str, max_delay_ms: int | None) -> None:
    """A worker holds a delayed message unacked until its eta: only Dramatiq's own retries,
    on the delay queue and no further ahead than the retry policy's longest backoff (else
    RabbitMQ takes the delivery back every consumer_timeout and redelivers it, for ever)."""
    if queue_name != dq_name(queue_name):
        raise InvalidMessageError("option 'eta' is only for Dramatiq's delay queue")
    if max_delay_ms is None:
        return
    ahead_ms = int(eta) - int(time.time() * 1000)
    if ahead_ms > max_delay_ms + ETA_CLOCK_SKEW_MS:
        raise InvalidMessageError(
            f"option 'eta' is {ahead_ms / 1000:.0f} s in the future; a retry waits at most "
            f"{max_delay_ms / 1000:g} s (the longest backoff, SYNCD_MAX_BACKOFF_MS)"
        )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_message(
    body: bytes, *, queue_name: str, max_delay_ms: int | None = None
) -> dramatiq.Message[Any]:
    """The Dramatiq message in `body`, or InvalidMessageError saying why it cannot run
    (`max_delay_ms`: see check_envelope)."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise InvalidMessageError(
            f"the body is {len(body)} bytes; the limit is {MAX_MESSAGE_BYTES}"
        )
    try:
        fields = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise InvalidMessageError("the body is not UTF-8 text") from None
    except ValueError as exc:
        raise InvalidMessageError(f"the body is not JSON ({exc})") from None
    except RecursionError:  # deeply nested arrays: must not escape into the consumer loop
        raise InvalidMessageError("the body nests JSON too deeply") from None
    check_envelope(fields, queue_name=queue_name, max_delay_ms=max_delay_ms)
    fields["args"] = ()
    fields["message_timestamp"] = int(fields["message_timestamp"])
    return dramatiq.Message(**fields)


def build_message(
    queue_name: str, actor_name: str, kwargs: dict[str, Any]
) -> dramatiq.Message[Any]:
    """A fresh envelope for `actor_name`; InvalidMessageError if the kwargs are wrong."""
    check_kwargs(actor_name, kwargs)
    return dramatiq.Message(
        queue_name=queue_name, actor_name=actor_name, args=(), kwargs=kwargs, options={}
    )


def normalize_uuid(value: str) -> str:
    """The canonical (hyphenated, lower-case) form; ValueError if it is not a uuid."""
    if not isinstance(value, str) or not _UUID_RE.match(value.strip()):
        raise ValueError(f"not a uuid: {value!r}")
    return str(uuid.UUID(value.strip()))


class PublishTimeout(Exception):
    """RabbitMQ did not confirm a publish within the publish deadline.

    Deliberately not a pika AMQPError: Dramatiq's enqueue retries those (reconnecting up to
    six times), which is the very wait the deadline cuts short.
    """


def publish(broker: dramatiq.Broker, message: dramatiq.Message[Any], *, timeout: float) -> str:
    """Enqueue `message`; return its id once the broker confirmed it.

    RabbitmqBroker(confirm_delivery=True) makes basic_publish wait for the broker's ack and
    retries a lost connection itself (a few attempts); whatever still fails becomes a
    TransientError, which the API answers with 503 and the scheduler retries next tick.
    A broker that takes no decision (frozen, or a partition that keeps TCP open) would hold
    the caller until the heartbeat gives up, about 85 s; syncd's RabbitMQ broker gives up
    after `timeout` seconds instead (SyncdRabbitmqBroker.enqueue_within).
    """
    try:
        _enqueue(broker, message, timeout)
    except PublishTimeout as exc:
        raise TransientError(
            f"RabbitMQ did not confirm {message.actor_name} on queue {message.queue_name!r} "
            f"within {timeout:g} s; the command may or may not have been queued"
        ) from exc
    except Exception as exc:
        raise TransientError(
            f"Publishing {message.actor_name} to queue {message.queue_name!r} failed: "
            f"{type(exc).__name__}: {exc or 'no detail'}"
        ) from exc
    COMMANDS_PUBLISHED.labels(actor=message.actor_name).inc()
    return message.message_id


def _enqueue(broker: dramatiq.Broker, message: dramatiq.Message[Any], timeout: float) -> None:
    enqueue_within = getattr(broker, "enqueue_within", None)
    if enqueue_within is None:  # the in-process StubBroker: it never waits for anyone
        broker.enqueue(message)
    else:
        enqueue_within(message, timeout)


def publish_import(
    broker: dramatiq.Broker,
    settings: Settings,
    *,
    name: str,
    version: str | None = None,
    source: str | None = None,
    force: bool = False,
    trigger: str | None = None,
) -> str:
    """`trigger`: who asks (api, scheduler, cli); without it the run's trigger is `message`."""
    kwargs: dict[str, Any] = {"name": name}
    if version is not None:
        kwargs["version"] = version
    if source is not None:
        kwargs["source"] = source
    if force:  # only when set: an unforced message stays what workers before `force` accept
        kwargs["force"] = True
    if trigger is not None:
        kwargs["trigger"] = trigger
    message = build_message(settings.queue_name, ACTOR_IMPORT, kwargs)
    return publish(broker, message, timeout=settings.publish_timeout_seconds)


def publish_update(
    broker: dramatiq.Broker,
    settings: Settings,
    *,
    catalog_uuid: str,
    force: bool = False,
    keep_missing: bool = False,
    allow_shrink: bool = False,
    trigger: str | None = None,
) -> str:
    """`force` accepts an older snapshot and lifts the shrink guard, once; `trigger`: as
    for publish_import."""
    kwargs: dict[str, Any] = {"catalog_uuid": catalog_uuid}
    check_kwargs(ACTOR_UPDATE, kwargs)
    kwargs["catalog_uuid"] = normalize_uuid(catalog_uuid)
    if force:
        kwargs["force"] = True
    if keep_missing:  # only when set, as `force`
        kwargs["keep_missing"] = True
    if allow_shrink:
        kwargs["allow_shrink"] = True
    if trigger is not None:
        kwargs["trigger"] = trigger
    message = build_message(settings.queue_name, ACTOR_UPDATE, kwargs)
    return publish(broker, message, timeout=settings.publish_timeout_seconds)
