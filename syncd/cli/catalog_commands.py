"""Bodies of `syncd import` and `syncd update` (with --wait).

With a broker (SYNCD_BROKER_URL) import/update publish a message for the workers and, with
--wait, follow the catalog row until that attempt has finished. In the embedded default there
is no queue another process could reach, so the command runs right here instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, func

from syncd.cli.common import _adapters, _close, _engine, _error, _fetcher
from syncd.cli.waiting import _report, _states, wait_for_outcome
from syncd.config import Settings
from syncd.db.tables import Catalog
from syncd.errors import NoAdapterError, SyncdError, TransientError
from syncd.names import normalize_name


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
    """`syncd import NAME [--version V] [--source URL] [--wait] [--timeout S] [--force]
    [--dry-run [--json]]`."""
    from syncd import service
    from syncd.publish import publish_import

    version, source, force = args.version, args.source, args.force
    try:
        # The name rule of the API and the messages (syncd.names): trimmed, NFKC, no
        # invisible or bidirectional formatting characters.
        name = normalize_name(args.name)
    except ValueError as exc:
        _error(f"catalog name {args.name!r}: {exc}")
        return 1
    if getattr(args, "dry_run", False):
        from syncd.cli.dry_run import dry_run_command

        args.name = name
        return dry_run_command(settings, args, "import")
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
                    engine,
                    adapters,
                    fetcher,
                    name=adapter.name,
                    version=version,
                    source=source,
                    force=force,
                    run=service.RunContext(trigger="cli"),
                ),
                what,
            )
        where = (func.lower(Catalog.name) == func.lower(adapter.name)) & (
            Catalog.catalog_type == str(adapter.catalog_type)
        )
        if version is not None:
            where = where & (Catalog.version == version)
        return _publish_and_follow(
            settings,
            engine,
            where,
            lambda broker: publish_import(
                broker,
                settings,
                name=adapter.name,
                version=version,
                source=source,
                force=force,
                trigger="cli",
            ),
            what,
            args,
        )
    finally:
        engine.dispose()


def update_command(settings: Settings, args: argparse.Namespace) -> int:
    """`syncd update UUID [--wait] [--timeout S] [--force] [--keep-missing] [--allow-shrink]
    [--dry-run]`."""
    from syncd import service
    from syncd.publish import publish_update

    parsed = service.parse_uuid(args.uuid)
    force, keep_missing = args.force, getattr(args, "keep_missing", False)
    allow_shrink = getattr(args, "allow_shrink", False)
    if parsed is None:
        _error(f"not a catalog uuid: {args.uuid!r}")
        return 1
    if getattr(args, "dry_run", False):
        from syncd.cli.dry_run import dry_run_command

        return dry_run_command(settings, args, "update")
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
                    engine,
                    adapters,
                    fetcher,
                    catalog_uuid=parsed.hex,
                    force=force,
                    keep_missing=keep_missing,
                    allow_shrink=allow_shrink,
                    run=service.RunContext(trigger="cli"),
                ),
                what,
            )
        return _publish_and_follow(
            settings,
            engine,
            where,
            lambda broker: publish_update(
                broker,
                settings,
                catalog_uuid=parsed.hex,
                force=force,
                keep_missing=keep_missing,
                allow_shrink=allow_shrink,
                trigger="cli",
            ),
            what,
            args,
        )
    finally:
        engine.dispose()
