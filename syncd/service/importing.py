"""The import command: it may create the catalog row, so it resolves and marks it race-free.

Apart from update because an import can fail before any row exists (unknown adapter, upstream
offers no version), which only the log and the counters can then record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from syncd import metrics
from syncd.logging import bind_job_context, get_logger
from syncd.service.attempts import _create_or_mark, _label, _Target
from syncd.service.failures import _failed_before_marking
from syncd.service.offered import _fetch_if_new
from syncd.service.resolving import find_adapter, latest_version
from syncd.service.running import CommandResult, _attempt

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
) -> CommandResult:
    """Import (or refresh, when it exists) the catalog `name` `version` from its adapter.

    version None = the latest version upstream offers (adapter.discover). The row is made by
    INSERT ... ON CONFLICT DO NOTHING on (name, version, catalog_type), so racing imports
    share one row, and an import that failed earlier is completed by the next one.
    `will_retry`: the caller retries a transient failure (the worker, while its retry budget
    lasts); it only changes the wording of update_errors and the log.
    """
    started = time.monotonic()
    with bind_job_context(catalog_name=name, catalog_version=version):
        log.info(
            "command_received", command=ACTOR_IMPORT, name=name, version=version, source=source
        )
        target: _Target | None = None
        stage = "resolve"
        prefetched = None
        try:
            adapter = find_adapter(adapters, name)
            if version is None:
                stage = "discover"
                version = latest_version(adapter, fetcher, source)
            else:
                stage = "fetch"
                prefetched = _fetch_if_new(engine, adapter, fetcher, version, source)
            stage = "mark"
            target, created = _create_or_mark(engine, adapter, version, source)
            metrics.COMMANDS_RECEIVED.labels(actor=ACTOR_IMPORT, catalog=_label(target)).inc()
            return _attempt(
                engine, adapter, fetcher, target, ACTOR_IMPORT, source or target.source_url,
                created=created, started=started, will_retry=will_retry, prefetched=prefetched,
            )  # fmt: skip
        except BaseException as exc:
            if target is None:  # no row to write to: the log line is all there is
                _failed_before_marking(
                    exc, ACTOR_IMPORT, metrics.catalog_label(name, version), stage, will_retry
                )
            raise
