"""The update command: it only ever works on a catalog row that already exists.

Apart from import because its failures differ: an unknown uuid is refused before marking, and
an adapter that went missing is written to the row it was meant to refresh.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from syncd import metrics
from syncd.errors import NoAdapterError
from syncd.logging import bind_job_context, get_logger
from syncd.service.attempts import _label, _mark, _record_failure, _Target, parse_uuid
from syncd.service.failures import _failed_before_marking
from syncd.service.resolving import adapter_for
from syncd.service.running import CommandResult, _attempt, run_catalog
from syncd.service.runs import FAILED, RunContext, RunResult, record_run

log = get_logger(__name__)


ACTOR_UPDATE = "update_catalog"


def update_catalog(
    engine: Engine,
    adapters: Mapping[str, Any],
    fetcher: Any,
    *,
    catalog_uuid: str,
    will_retry: bool = False,
    force: bool = False,
    keep_missing: bool = False,
    allow_shrink: bool = False,
    run: RunContext | None = None,
) -> CommandResult:
    """Refresh the catalog `catalog_uuid` (hyphens optional) from its adapter. `force`
    accepts a snapshot older than the one the catalog holds (refused otherwise);
    `keep_missing` adds and updates but deletes nothing (a site whose mirror is partial);
    `force` also lifts the shrink guard (`allow_shrink`, its older name, only that). `run`:
    who asked (syncd/service/runs.py; default: a message)."""
    started = time.monotonic()
    run = run or RunContext()
    parsed = parse_uuid(catalog_uuid)
    with bind_job_context(catalog_uuid=parsed.hex if parsed else catalog_uuid):
        log.info("command_received", command=ACTOR_UPDATE)
        target: _Target | None = None
        try:
            target = _mark(engine, catalog_uuid)
            metrics.COMMANDS_RECEIVED.labels(actor=ACTOR_UPDATE, catalog=_label(target)).inc()
            adapter = adapter_for(adapters, target.name, target.catalog_type)
            return _attempt(
                engine, adapter, fetcher, target, ACTOR_UPDATE, target.source_url,
                created=False, started=started, will_retry=will_retry, force=force,
                keep_missing=keep_missing, allow_shrink=allow_shrink, run=run,
            )  # fmt: skip
        except NoAdapterError as exc:
            assert target is not None
            text = _record_failure(engine, target, exc, ACTOR_UPDATE, "resolve", will_retry)
            result = RunResult(FAILED, error=text or exc.message)
            record_run(engine, run, ACTOR_UPDATE, run_catalog(target), result)
            raise
        except BaseException as exc:
            if target is None:
                _failed_before_marking(exc, ACTOR_UPDATE, "mark", will_retry)
            raise
