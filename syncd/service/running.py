"""One marked attempt carried through: fetch the snapshot, refuse it if it is older than
the catalog's (syncd/service/staleness.py), sync it, stamp the outcome, and record it as a
run (syncd/service/runs.py): inside the sync's transaction when it wrote rows, after it
otherwise.

Shared by both commands: import and update differ only in how they find and mark the row,
not in what an attempt does once it has one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from syncd import metrics
from syncd.config import DEFAULT_MAX_FIELD_CHARS, DEFAULT_MAX_SHRINK_FRACTION
from syncd.domain import CatalogSnapshot, SyncStats
from syncd.errors import RefusedError
from syncd.logging import bind_job_context, get_logger
from syncd.service.attempts import _label, _record_failure, _record_success, _Target
from syncd.service.failures import is_transient
from syncd.service.runs import (
    FAILED,
    REFUSED,
    UNCHANGED,
    RunCatalog,
    RunContext,
    RunResult,
    RunWriter,
    record_run,
)
from syncd.service.staleness import refuse_older, with_snapshot_time

log = get_logger(__name__)


@dataclass(frozen=True)
class CommandResult:
    """What one successful command did."""

    catalog_uuid: str
    catalog_id: int
    name: str
    version: str
    catalog_type: str
    created: bool  # import made a new catalog row
    changed: bool  # False: upstream answered "not modified", nothing was written
    stats: SyncStats | None
    seconds: float


def fetch_snapshot(
    adapter: Any,
    fetcher: Any,
    *,
    version: str | None,
    source: str,
    validators: dict[str, Any] | None,
) -> CatalogSnapshot | None:
    """The adapter's snapshot (None: upstream not modified), with its snapshot time settled,
    logged and counted as one fetch."""
    log.info("fetch_started", adapter=adapter.name, source=source or "default")
    started = time.monotonic()
    bytes_before = _bytes_downloaded(fetcher)
    hashes_before = _same_hashes(fetcher)
    snapshot: CatalogSnapshot | None = adapter.fetch_snapshot(
        fetcher, version=version, source=source or None, validators=validators
    )
    seconds = round(time.monotonic() - started, 3)
    if snapshot is None:
        # Unchanged by a 304, or by content: a body (or a published hash) equal to the
        # last sync's, whatever its ETag; either way nothing was parsed or staged.
        how = {"compared": "hash"} if _same_hashes(fetcher) > hashes_before else {}
        log.info("upstream_not_modified", seconds=seconds, **how)
        metrics.UPSTREAM_NOT_MODIFIED.labels(adapter=adapter.name).inc()
        return None
    fetched = _bytes_downloaded(fetcher) - bytes_before
    log.info("fetch_finished", seconds=seconds, bytes=fetched)
    metrics.UPSTREAM_BYTES.labels(adapter=adapter.name).inc(fetched)
    return with_snapshot_time(snapshot)


def _attempt(
    engine: Engine,
    adapter: Any,
    fetcher: Any,
    target: _Target,
    actor: str,
    source: str,
    *,
    created: bool,
    started: float,
    will_retry: bool,
    force: bool = False,
    fetched: CatalogSnapshot | None = None,
    keep_missing: bool = False,
    allow_shrink: bool = False,
    run: RunContext | None = None,
) -> CommandResult:
    """`fetched`: a snapshot the caller already has (an import that read the latest version
    from it); None = fetch it now, conditionally on the catalog's validators. `force`
    accepts an older snapshot and lifts the shrink guard (as `allow_shrink`), once. `run`:
    who asked, for the run row (default: a message, now)."""
    label = _label(target)
    stage = "fetch"
    run = run or RunContext()
    catalog = run_catalog(target)
    recorded = False  # the sync wrote the run row in its own transaction
    snapshot: CatalogSnapshot | None = None
    with bind_job_context(
        catalog_uuid=target.uuid, catalog_name=target.name, catalog_version=target.version
    ):
        try:
            if fetched is None:
                snapshot = fetch_snapshot(
                    adapter,
                    fetcher,
                    version=target.version,
                    source=source,
                    validators=target.validators,
                )
            else:
                snapshot = None if _same_download(fetched, target) else fetched
            stats: SyncStats | None = None
            if snapshot is not None:
                refuse_older(snapshot.catalog.snapshot_time, target.snapshot_time, force=force)
                stage = "sync"
                writer = RunWriter(run, actor, target.id, catalog, snapshot.validators)
                stats = _sync(
                    engine, target, snapshot, fetcher, keep_missing, allow_shrink or force, writer
                )
                recorded = writer.written
            stage = "finish"
            _record_success(engine, target, stats)
        except BaseException as exc:
            text = _record_failure(engine, target, exc, actor, stage, will_retry)
            if text is not None and not recorded:
                outcome = REFUSED if isinstance(exc, RefusedError) else FAILED
                retry = will_retry and is_transient(exc)
                seen = snapshot.validators if snapshot is not None else {}
                result = RunResult(outcome, seen, error=text, will_retry=retry)
                record_run(engine, run, actor, catalog, result)
            raise
        if not recorded:  # upstream not modified, or nothing differed: nothing written
            seen = snapshot.validators if snapshot is not None else target.validators
            record_run(engine, run, actor, catalog, RunResult(UNCHANGED, seen, stats))
        seconds = round(time.monotonic() - started, 3)
        log.info(
            "command_succeeded",
            command=actor,
            changed=snapshot is not None,
            created=created,
            rows_written=stats.rows_written if stats else 0,
            seconds=seconds,
        )
        metrics.COMMANDS_SUCCEEDED.labels(actor=actor, catalog=label).inc()
        metrics.LAST_SUCCESS.labels(catalog=label).set(time.time())
        return CommandResult(
            catalog_uuid=target.uuid,
            catalog_id=target.id,
            name=target.name,
            version=target.version,
            catalog_type=target.catalog_type,
            created=created,
            changed=snapshot is not None,
            stats=stats,
            seconds=seconds,
        )


def run_catalog(target: _Target) -> RunCatalog:
    return RunCatalog(target.uuid, target.name, target.version, target.catalog_type)


def _same_download(snapshot: CatalogSnapshot, target: _Target) -> bool:
    """Whether a snapshot fetched without validators (an import that had to read the latest
    version first) is the data of the catalog's last sync: the same validators are what a
    conditional request would have answered 304 to, so it is "not modified" too."""
    if not snapshot.validators:
        return False
    if snapshot.validators == target.validators:
        log.info("upstream_not_modified", seconds=0.0, compared="validators")
        return True
    if _hashes(snapshot.validators) and _hashes(snapshot.validators) == _hashes(target.validators):
        log.info("upstream_not_modified", seconds=0.0, compared="hash")
        return True
    return False


def _hashes(validators: dict[str, Any]) -> dict[str, Any] | None:
    """Each file's body hash (or absence); None when some file has neither (a catalog
    synced before bodies were hashed): then only the validators can tell."""
    found: dict[str, Any] = {}
    for url, entry in validators.items():
        mark = entry.get("hash") or ("absent" if entry.get("absent") else None)
        if mark is None:
            return None
        found[url] = mark
    return found


def _sync(
    engine: Engine,
    target: _Target,
    snapshot: CatalogSnapshot,
    fetcher: Any,
    keep_missing: bool = False,
    allow_shrink: bool = False,
    on_written: RunWriter | None = None,
) -> SyncStats:
    # Imported here: the sync engine is heavy and only the worker needs it. It logs
    # "sync_finished" and records SYNC_DURATION / ROWS_WRITTEN itself.
    from syncd.sync import sync_catalog

    return sync_catalog(
        engine,
        target.id,
        snapshot,
        baseline=target.operator_fields,
        max_field_chars=_max_field_chars(fetcher),
        keep_missing=keep_missing,
        max_shrink_fraction=_max_shrink_fraction(fetcher),
        allow_shrink=allow_shrink,
        on_written=on_written,
    )


def _max_shrink_fraction(fetcher: Any) -> float:
    """SYNCD_MAX_SHRINK_FRACTION of the process, read as _max_field_chars reads its limit."""
    limit = getattr(getattr(fetcher, "settings", None), "max_shrink_fraction", None)
    if isinstance(limit, int | float) and limit >= 0:
        return float(limit)
    return DEFAULT_MAX_SHRINK_FRACTION


def _max_field_chars(fetcher: Any) -> int:
    """SYNCD_MAX_FIELD_CHARS of the process, from the settings its fetcher was built with
    (the one upstream resource every command gets)."""
    limit = getattr(getattr(fetcher, "settings", None), "max_field_chars", None)
    return limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_FIELD_CHARS


def _same_hashes(fetcher: Any) -> int:
    """This thread's count of fetches found unchanged by content hash (Fetcher)."""
    value = getattr(fetcher, "thread_same_hashes", 0)
    return value if isinstance(value, int) else 0


def _bytes_downloaded(fetcher: Any) -> int:
    """This thread's running byte count: the fetcher is shared by the worker's threads, so
    only the per-thread counter gives an exact figure for one command."""
    value = getattr(fetcher, "thread_bytes_downloaded", 0)
    return value if isinstance(value, int) else 0
