"""Bodies of `syncd import`, `syncd update`, `syncd discover` and `syncd redrive`.

Each takes the settings and the parsed arguments, prints what happened (errors on stderr,
prefixed "syncd: "), and returns the exit code: 0 done, 1 the command failed, 2 it could not
be attempted (configuration, broker unreachable).

With a broker (SYNCD_BROKER_URL) import/update publish a message for the workers and, with
--wait, follow the catalog row until that attempt has finished. In the embedded default there
is no queue another process could reach, so the command runs right here instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from syncd.config import Settings
from syncd.db.tables import Catalog
from syncd.errors import NoAdapterError, SyncdError, TransientError

POLL_SECONDS = 0.5


def _error(text: str) -> None:
    print(f"syncd: {text}", file=sys.stderr)


@dataclass(frozen=True)
class _RowState:
    uuid: str
    name: str
    version: str
    catalog_type: str
    last_update_attempt: datetime | None
    last_successful_update: datetime | None
    update_errors: str
    package_count: int
    version_count: int


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every timestamp syncd writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _states(engine: Engine, where: Any) -> list[_RowState]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Catalog.uuid,
                Catalog.name,
                Catalog.version,
                Catalog.catalog_type,
                Catalog.last_update_attempt,
                Catalog.last_successful_update,
                Catalog.update_errors,
                Catalog.package_count,
                Catalog.version_count,
            ).where(where)
        ).all()
    return [
        _RowState(
            uuid=row.uuid.hex,
            name=row.name,
            version=row.version,
            catalog_type=row.catalog_type,
            last_update_attempt=_utc(row.last_update_attempt),
            last_successful_update=_utc(row.last_successful_update),
            update_errors=row.update_errors or "",
            package_count=row.package_count or 0,
            version_count=row.version_count or 0,
        )
        for row in rows
    ]


def _started_since(
    engine: Engine, where: Any, before: dict[str, datetime | None]
) -> _RowState | None:
    """A row matching `where` whose attempt started after `before` (uuid ->
    last_update_attempt read before publishing): a row that was not there, or whose
    last_update_attempt changed."""
    for state in _states(engine, where):
        if state.last_update_attempt is None:
            continue
        if state.uuid not in before or state.last_update_attempt != before[state.uuid]:
            return state
    return None


@dataclass(frozen=True)
class _Waited:
    succeeded: bool | None  # None: no final outcome within the timeout
    error: str
    row: _RowState | None  # the catalog the command worked on (or was seen working on)


def wait_for_outcome(
    engine: Engine,
    message_id: str,
    where: Any,
    before: dict[str, datetime | None],
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> _Waited:
    """Poll the command's outcome, which the worker stores by message id after each attempt,
    until it is final (succeeded, or failed with no retry left) or `timeout` passes.

    By message id rather than by catalog row: an import can fail before it has a row, and
    another attempt on the same catalog is not this command's.
    """
    from syncd.outcomes import read_outcome

    deadline = time.monotonic() + timeout
    while True:
        outcome = read_outcome(engine, message_id)
        if outcome is not None and outcome.final:
            row = None
            if outcome.catalog_uuid:
                rows = _states(engine, Catalog.uuid == uuid_module.UUID(outcome.catalog_uuid))
                row = rows[0] if rows else None
            return _Waited(outcome.succeeded, outcome.error, row)
        if time.monotonic() >= deadline:
            return _Waited(None, "", _started_since(engine, where, before))
        sleep(POLL_SECONDS)


def _report(waited: _Waited, what: str, timeout: float, queue_name: str) -> int:
    row = waited.row
    if waited.succeeded and row is not None:
        print(
            f"{what}: done, catalog {row.uuid} {row.name} {row.version} has "
            f"{row.package_count} packages, {row.version_count} versions"
        )
        return 0
    if waited.succeeded is False:
        _error(f"{what} failed: {waited.error}")
        return 1
    if row is not None:
        _error(
            f"{what}: no result after {timeout:g} s (the attempt started but has not "
            "finished); the worker's log says more."
        )
        return 1
    _error(
        f"{what}: no result after {timeout:g} s and no catalog row shows an attempt: is a "
        "`syncd worker` running? Its log (command_failed) and the dead-letter queue "
        f"{queue_name}.XQ say more."
    )
    return 1


def _engine(settings: Settings) -> Engine:
    from syncd.db.engine import make_engine

    return make_engine(settings.database_url)


def _adapters(settings: Settings) -> dict[str, Any]:
    from adapters.base import load_adapters

    return load_adapters(settings)


def _fetcher(settings: Settings) -> Any:
    from adapters.fetch import Fetcher

    return Fetcher(settings)


def _close(fetcher: Any) -> None:
    close = getattr(fetcher, "close", None)
    if callable(close):
        close()


def _run_here(settings: Settings, engine: Engine, run: Callable[[Any, Any], Any], what: str) -> int:
    """The embedded default: run the command in this process."""
    from syncd.service import CommandResult

    print(f"{what}: no SYNCD_BROKER_URL, running it in this process")
    fetcher = _fetcher(settings)
    try:
        result: CommandResult = run(_adapters(settings), fetcher)
    except SyncdError as exc:
        _error(f"{what} failed: {exc.message}")
        return 1
    except Exception as exc:
        _error(f"{what} failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        _close(fetcher)
    outcome = "upstream unchanged" if not result.changed else "done"
    print(f"{what}: {outcome}, catalog {result.catalog_uuid} {result.name} {result.version}")
    return 0


def _publish_and_follow(
    settings: Settings,
    engine: Engine,
    where: Any,
    publish: Callable[[Any], str],
    what: str,
    args: argparse.Namespace,
) -> int:
    """Publish; with --wait, follow the rows matching `where` until the attempt finished."""
    from syncd.broker import make_broker

    # Read before publishing, so that an attempt that starts at once is still told apart.
    before = {state.uuid: state.last_update_attempt for state in _states(engine, where)}
    broker = make_broker(settings)
    try:
        message_id = publish(broker)
    except TransientError as exc:
        _error(f"{what}: {exc.message}")
        return 2
    finally:
        broker.close()
    print(f"{what}: queued as message {message_id} on queue {settings.queue_name!r}")
    if not args.wait:
        return 0
    waited = wait_for_outcome(engine, message_id, where, before, timeout=args.timeout)
    return _report(waited, what, args.timeout, settings.queue_name)


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    """`syncd import NAME [--version V] [--source URL] [--wait] [--timeout S]`."""
    from syncd import service
    from syncd.publish import publish_import

    name, version, source = args.name, args.version, args.source
    what = f"import of {name}{' ' + version if version else ''}"
    adapters = _adapters(settings)
    try:
        adapter = service.find_adapter(adapters, name)
    except NoAdapterError as exc:
        _error(exc.message)
        return 1
    engine = _engine(settings)
    try:
        if settings.uses_embedded_queue:
            return _run_here(
                settings,
                engine,
                lambda adapters, fetcher: service.import_catalog(
                    engine, adapters, fetcher, name=adapter.name, version=version, source=source
                ),
                what,
            )
        where = (Catalog.name == adapter.name) & (Catalog.catalog_type == str(adapter.catalog_type))
        if version is not None:
            where = where & (Catalog.version == version)
        return _publish_and_follow(
            settings,
            engine,
            where,
            lambda broker: publish_import(
                broker, settings, name=adapter.name, version=version, source=source
            ),
            what,
            args,
        )
    finally:
        engine.dispose()


def update_command(settings: Settings, args: argparse.Namespace) -> int:
    """`syncd update UUID [--wait] [--timeout S]`."""
    from syncd import service
    from syncd.publish import publish_update

    parsed = service.parse_uuid(args.uuid)
    if parsed is None:
        _error(f"not a catalog uuid: {args.uuid!r}")
        return 1
    engine = _engine(settings)
    try:
        where = Catalog.uuid == parsed
        states = _states(engine, where)
        if not states:
            _error(f"no catalog with uuid {parsed.hex}")
            return 1
        state = states[0]
        what = f"update of {state.name} {state.version}"
        try:
            service.adapter_for(_adapters(settings), state.name, state.catalog_type)
        except NoAdapterError as exc:
            _error(exc.message)
            return 1
        if settings.uses_embedded_queue:
            return _run_here(
                settings,
                engine,
                lambda adapters, fetcher: service.update_catalog(
                    engine, adapters, fetcher, catalog_uuid=parsed.hex
                ),
                what,
            )
        return _publish_and_follow(
            settings,
            engine,
            where,
            lambda broker: publish_update(broker, settings, catalog_uuid=parsed.hex),
            what,
            args,
        )
    finally:
        engine.dispose()


def discover_command(settings: Settings, args: argparse.Namespace) -> int:
    """`syncd discover [--json]`: what each adapter offers upstream, next to the database."""
    from syncd.discovery import DiscoverCache, discover

    engine = _engine(settings)
    fetcher = _fetcher(settings)
    try:
        entries = discover(
            engine,
            _adapters(settings),
            fetcher,
            cache=DiscoverCache(settings.discover_cache_seconds),
        )
    finally:
        _close(fetcher)
        engine.dispose()
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print("no adapters are installed")
        return 0
    header = ("NAME", "TYPE", "LATEST UPSTREAM", "NEWEST IMPORTED", "UPDATE")
    rows = [
        (
            e["name"],
            e["catalog_type"],
            e["latest_version"] or "(upstream unreachable)",
            e["existing_version"] or "-",
            "yes" if e["update_available"] else "no",
        )
        for e in entries
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0 if all(e["latest_version"] for e in entries) else 1


def redrive_command(settings: Settings, args: argparse.Namespace) -> int:
    """`syncd redrive [--queue Q] [--limit N]`: move dead letters back to their queue."""
    if settings.uses_embedded_queue:
        _error("redrive needs SYNCD_BROKER_URL: the in-process queue keeps no dead letters")
        return 2
    queue = args.queue or settings.queue_name
    if args.limit is not None and args.limit < 0:
        _error("--limit must be 0 or more")
        return 2
    try:
        moved, left = redrive(settings.broker_url, queue, limit=args.limit)
    except SyncdError as exc:
        _error(exc.message)
        return 1
    print(f"moved {moved} message(s) from {queue}.XQ to {queue}; {left} left in {queue}.XQ")
    return 0


# Headers RabbitMQ adds when it dead-letters a message; they describe the old trip only.
_DEATH_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)


def _fresh_body(body: bytes, queue: str) -> bytes:
    """The dead letter's body with its retry budget restored, so that a redriven command
    gets all its retries again; bodies that are not a Dramatiq envelope move unchanged (the
    worker rejects them again, with the reason in its log)."""
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        return body
    if not isinstance(fields, dict) or not isinstance(fields.get("options"), dict):
        return body
    for key in ("retries", "traceback", "requeue_timestamp", "eta"):
        fields["options"].pop(key, None)
    # A message that died on the delay queue names it; it belongs on the queue itself.
    if fields.get("queue_name") in (f"{queue}.DQ", f"{queue}.XQ"):
        fields["queue_name"] = queue
    return json.dumps(fields, separators=(",", ":")).encode()


def redrive(broker_url: str, queue: str, *, limit: int | None = None) -> tuple[int, int]:
    """Move up to `limit` messages (all when None) from `<queue>.XQ` to `queue`.

    Each message is published persistent with a publisher confirm and only then acked on the
    dead-letter queue, so a crash in between duplicates a command (harmless: commands are
    idempotent) but never loses one. Messages are counted before the first move, so a message
    that dies again while this runs is not moved twice. Returns (moved, left in the XQ).
    """
    import pika
    import pika.exceptions

    from syncd.broker import with_url_defaults

    dead = f"{queue}.XQ"
    params = pika.URLParameters(with_url_defaults(broker_url.split(";")[0]))
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        raise TransientError(f"cannot connect to RabbitMQ: {type(exc).__name__}: {exc}") from exc
    moved = 0
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        try:
            waiting = channel.queue_declare(queue=dead, passive=True).method.message_count
            channel.queue_declare(queue=queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise SyncdError(f"queue {exc.reply_text.split(' - ')[-1]}") from exc
        budget = waiting if limit is None else min(limit, waiting)
        while moved < budget:
            method, properties, body = channel.basic_get(dead, auto_ack=False)
            if method is None:
                break
            headers = {
                k: v for k, v in (properties.headers or {}).items() if k not in _DEATH_HEADERS
            }
            try:
                channel.basic_publish(
                    exchange="",
                    routing_key=queue,
                    body=_fresh_body(body, queue),
                    properties=pika.BasicProperties(
                        delivery_mode=2,
                        content_type=properties.content_type,
                        headers=headers or None,
                    ),
                    mandatory=True,
                )
            except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:
                channel.basic_nack(method.delivery_tag, requeue=True)
                raise SyncdError(
                    f"RabbitMQ refused a message for {queue!r} ({type(exc).__name__}); "
                    f"moved {moved} before it"
                ) from exc
            channel.basic_ack(method.delivery_tag)
            moved += 1
        left = channel.queue_declare(queue=dead, passive=True).method.message_count
    except pika.exceptions.AMQPConnectionError as exc:
        raise TransientError(
            f"lost the connection to RabbitMQ after moving {moved} message(s): {exc}"
        ) from exc
    finally:
        if connection.is_open:
            connection.close()
    return moved, left
