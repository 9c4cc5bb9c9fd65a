"""The `syncd` command line: one subcommand per process type or operation, and `main`.

Each subcommand parses its flags and calls one function of the module that owns the work;
nothing here knows how that work is done, so the imports of that work stay inside the
handlers and `syncd --help` loads none of it.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Sequence

from syncd.cli.portable import add_portable_commands
from syncd.cli.schedule import positive_count, utc_instant
from syncd.config import Settings, load_settings

Handler = Callable[[Settings, argparse.Namespace], int]


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.cli.common import _error
    from syncd.db.engine import make_engine
    from syncd.db.migrate import upgrade
    from syncd.readmodel import fill_stale

    try:
        upgrade(settings.database_url)
    except RuntimeError as exc:  # a migration that refuses the data it found says why
        _error(str(exc))
        return 1
    print(f"database at revision head: {_redacted(settings.database_url)}")
    # Fragments the package list embeds, missing since 0013 or of an older format: rendered
    # here once rather than on the fly by every list request until each catalog's next sync.
    engine = make_engine(settings.database_url)
    try:
        rendered = fill_stale(engine)
    finally:
        engine.dispose()
    if rendered:
        print(f"package list fragments rendered: {rendered}")
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.tokens import token_command

    return token_command(settings, args)


def _api(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.api.app import serve

    serve(settings, host=args.host, port=args.port)
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.worker import run_worker

    return run_worker(settings, processes=args.processes, threads=args.threads)


def _scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.scheduler import run_scheduler

    return run_scheduler(settings)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.runall import run_all

    return run_all(settings, host=args.host, port=args.port)


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.cli.catalog_commands import import_command

    return import_command(settings, args)


def _update(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.cli.catalog_commands import update_command

    return update_command(settings, args)


def _discover(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.cli.discover import discover_command

    return discover_command(settings, args)


def _redrive(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.cli.redrive import redrive_command

    return redrive_command(settings, args)


def _schedule(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.cli.schedule import schedule_command

    return schedule_command(settings, args)


def _redacted(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keeps HPC software catalogs in a database and serves them over HTTP.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = add("run", _run, "API, worker and scheduler in one process (embedded default)")
    p.add_argument("--host", default=None, help="bind address (default SYNCD_API_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default SYNCD_API_PORT)")

    p = add("api", _api, "serve the HTTP API")
    p.add_argument("--host", default=None, help="bind address (default SYNCD_API_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default SYNCD_API_PORT)")

    p = add("worker", _worker, "consume import/update commands from the queue")
    p.add_argument("--processes", type=int, default=None, help="default SYNCD_WORKER_PROCESSES")
    p.add_argument("--threads", type=int, default=None, help="default SYNCD_WORKER_THREADS")

    add("scheduler", _scheduler, "emit auto-update ticks (leader-elected)")
    p = add("schedule", _schedule, "show the next ticks and when each catalog is next due")
    p.add_argument("--next", type=positive_count, default=5, metavar="N", help="ticks to show (5)")
    p.add_argument(
        "--from",
        dest="start",
        type=utc_instant,
        default=None,
        metavar="ISO",
        help="compute from this ISO 8601 time instead of now (no offset = UTC)",
    )

    add("migrate", _migrate, "create or upgrade the database schema (idempotent)")

    p = add("import", _import, "enqueue the import of a catalog from a registered adapter")
    p.add_argument("name", help="adapter name, e.g. EESSI or Spack")
    p.add_argument("--version", default=None, help="upstream version (default: latest)")
    p.add_argument("--source", default=None, help="URL or file:// path of the upstream data")
    p.add_argument("--wait", action="store_true", help="wait until the import has finished")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits at most")
    _dry_run_flags(p)

    p = add("update", _update, "enqueue the update of one catalog")
    p.add_argument("uuid", help="catalog uuid (with or without hyphens)")
    p.add_argument("--wait", action="store_true", help="wait until the update has finished")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits at most")
    p.add_argument("--keep-missing", action="store_true", help=KEEP_MISSING_HELP)
    p.add_argument("--allow-shrink", action="store_true", help=ALLOW_SHRINK_HELP)
    _dry_run_flags(p)

    add_portable_commands(add, FORCE_HELP)

    p = add("discover", _discover, "show what each adapter offers upstream")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("redrive", _redrive, "move dead-lettered messages back to their queue")
    p.add_argument("--queue", default=None, help="queue name (default SYNCD_QUEUE_NAME)")
    p.add_argument("--limit", type=int, default=None, help="move at most N messages")

    p = add("token", _token, "manage API tokens")
    token_sub = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", help="create a token and print its key once")
    create.add_argument("--staff", action="store_true", help="may write (create, import, ...)")
    create.add_argument("--name", default="", help="who or what the token is for")
    create.add_argument(
        "--offering",
        action="append",
        default=[],
        type=_offering_uuid,
        metavar="UUID",
        help="may manage this Waldur offering's software catalogs (repeatable)",
    )
    token_sub.add_parser("list", help="list tokens (never their keys)")
    revoke = token_sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    return parser


def _dry_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    p.add_argument("--json", action="store_true", help="with --dry-run: print JSON")


def _offering_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an offering uuid: {text!r}") from None


DRY_RUN_HELP = "show what would change, write nothing (runs in this process)"
KEEP_MISSING_HELP = "add and update, delete nothing upstream dropped (a partial mirror)"
ALLOW_SHRINK_HELP = (
    "the shrink-guard part of --force (its older name): accept, this once, an update that "
    "removes more of the catalog's packages or versions than SYNCD_MAX_SHRINK_FRACTION allows"
)
FORCE_HELP = (
    "accept, this once, an upstream snapshot older than the catalog's or one the shrink guard "
    "refuses (SYNCD_MAX_SHRINK_FRACTION; refused otherwise)"
)

# The commands that use the tick trigger (it is checked with the other settings).
SCHEDULING_COMMANDS = ("scheduler", "run", "schedule")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.command in SCHEDULING_COMMANDS:
            from syncd.scheduler import make_trigger

            make_trigger(settings)  # a bad SYNCD_TICK_CRON is refused here, not at the tick
    except ValueError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return 2
    from syncd.logging import configure_logging

    configure_logging(settings, role=args.command)
    handler: Handler = args.handler
    return handler(settings, args)
