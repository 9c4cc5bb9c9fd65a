"""The import command: it may create the catalog row, so it resolves and marks it race-free.

Apart from update because an import can fail before any row exists (unknown adapter, upstream
offers no version, or not the one named), which only the log and the counters can then record.

An import that would create a row downloads first, in both cases: without a version the
latest snapshot names the row (asking adapter.discover first would download the same file
twice); with a version the row is made only when the snapshot holds it, so a mistyped version
leaves no empty catalog behind (auto-update on, failing every day) that a retry then refuses
as "already exists". Either way the attempt syncs that snapshot: nothing is downloaded twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, select

from syncd import metrics
from syncd.db.tables import Catalog
from syncd.domain import CatalogSnapshot
from syncd.errors import SyncdError, UpstreamError, VersionNotOfferedError
from syncd.logging import bind_job_context, get_logger
from syncd.service.attempts import _create_or_mark, _label, _Target, parse_uuid, same_catalog
from syncd.service.failures import _failed_before_marking, describe_error, is_transient
from syncd.service.resolving import find_adapter
from syncd.service.running import CommandResult, _attempt, fetch_snapshot
from syncd.service.runs import FAILED, RunCatalog, RunContext, RunResult, record_run

log = get_logger(__name__)


ACTOR_IMPORT = "import_catalog"


def import_catalog(
    engine: Engine,
    adapters: Mapping[str, Any],
    fetcher: Any,
    *,
    name: str,
    version: str | None = None,
    source: str | None = None,
    will_retry: bool = False,
    force: bool = False,
    catalog_uuid: str | None = None,
    run: RunContext | None = None,
) -> CommandResult:
    """Import (or refresh, when it exists) the catalog `name` `version` from its adapter.

    version None = the latest version upstream offers, read from its snapshot (see the module
    docstring for why the snapshot is fetched before the row exists). The row is made by
    INSERT ... ON CONFLICT DO NOTHING on (name, version, catalog_type), so racing imports
    share one row, and an import that failed earlier is completed by the next one.
    `will_retry`: the caller retries a transient failure (the worker, while its retry budget
    lasts); it only changes the wording of update_errors and the log. `force` accepts a
    snapshot older than the one the catalog holds (refused otherwise). `catalog_uuid`: the
    uuid a row this import creates gets (`syncd import-file --keep-uuids`), else a random one.
    `run`: who asked (syncd/service/runs.py; default: a message).
    """
    started = time.monotonic()
    run = run or RunContext()
    with bind_job_context(catalog_name=name, catalog_version=version):
        log.info(
            "command_received", command=ACTOR_IMPORT, name=name, version=version, source=source
        )
        target: _Target | None = None
        stage = "resolve"
        fetched: CatalogSnapshot | None = None
        try:
            adapter = find_adapter(adapters, name)
            stage = "fetch"
            version, fetched = _fetch_first(engine, adapter, fetcher, version, source)
            stage = "mark"
            target, created = _create_or_mark(
                engine, adapter, version, source, parse_uuid(catalog_uuid or "")
            )
            metrics.COMMANDS_RECEIVED.labels(actor=ACTOR_IMPORT, catalog=_label(target)).inc()
            return _attempt(
                engine, adapter, fetcher, target, ACTOR_IMPORT, source or target.source_url,
                created=created, started=started, will_retry=will_retry, force=force,
                fetched=fetched, run=run,
            )  # fmt: skip
        except BaseException as exc:
            if target is None:  # no row to write to: the log line and the run are all
                _close(fetched)
                _failed_before_marking(exc, ACTOR_IMPORT, stage, will_retry)
                _record_unmarked(engine, run, exc, stage, will_retry, name, version)
            raise


def _record_unmarked(
    engine: Engine,
    run: RunContext,
    exc: BaseException,
    stage: str,
    will_retry: bool,
    name: str,
    version: str | None,
) -> None:
    """The failed run of an import that has no catalog row (no uuid): named as asked."""
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        return
    catalog = RunCatalog(None, name, version or "", "")
    result = RunResult(
        FAILED, error=describe_error(exc, stage), will_retry=will_retry and is_transient(exc)
    )
    record_run(engine, run, ACTOR_IMPORT, catalog, result)


def _fetch_first(
    engine: Engine, adapter: Any, fetcher: Any, version: str | None, source: str | None
) -> tuple[str, CatalogSnapshot | None]:
    """The version the import works on, and the snapshot fetched for it before any row
    exists (unconditionally: without a row there are no validators); None when the named
    version's catalog exists already (its attempt then fetches conditionally on the row's
    validators).

    Raises VersionNotOfferedError when the snapshot does not hold the version named; any
    permanent failure here is logged as `import_refused`, since no row exists to record it.
    """
    if version is not None and _exists(engine, adapter, version):
        return version, None
    try:
        snapshot = fetch_snapshot(
            adapter, fetcher, version=version, source=source or "", validators=None
        )
        offered = snapshot.catalog.version if snapshot is not None else ""
        where = source or adapter.default_source()
        if snapshot is None or not offered:
            _close(snapshot)
            raise UpstreamError(
                f"{adapter.name} upstream at {where} offers no catalog versions; "
                "name one with --version",
                transient=False,
            )
        if version is not None and offered != version:
            _close(snapshot)
            raise VersionNotOfferedError(
                f"{adapter.name} upstream at {where} offers {offered}, not {version}: "
                "no catalog was created."
            )
    except SyncdError as exc:
        if not exc.transient:
            log.warning("import_refused", name=adapter.name, version=version, reason=exc.message)
        raise
    return offered, snapshot


def _exists(engine: Engine, adapter: Any, version: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            select(Catalog.id).where(same_catalog(adapter.name, version, str(adapter.catalog_type)))
        ).first()
    return found is not None


def _close(snapshot: CatalogSnapshot | None) -> None:
    # A streaming snapshot holds the downloaded files open until its generator ends.
    close = getattr(snapshot.packages, "close", None) if snapshot is not None else None
    if callable(close):
        close()
