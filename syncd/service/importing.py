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
from syncd.domain import CatalogSnapshot
from syncd.errors import UpstreamError
from syncd.logging import bind_job_context, get_logger
from syncd.service.attempts import _create_or_mark, _label, _Target
from syncd.service.failures import _failed_before_marking
from syncd.service.resolving import find_adapter
from syncd.service.running import CommandResult, _attempt, fetch_snapshot

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
) -> CommandResult:
    """Import (or refresh, when it exists) the catalog `name` `version` from its adapter.

    version None = the latest version upstream offers: the adapter's snapshot of its latest
    version is fetched first (one download; asking adapter.discover first would download
    the same file twice) and names the row. The row is made by
    INSERT ... ON CONFLICT DO NOTHING on (name, version, catalog_type), so racing imports
    share one row, and an import that failed earlier is completed by the next one.
    `will_retry`: the caller retries a transient failure (the worker, while its retry budget
    lasts); it only changes the wording of update_errors and the log. `force` accepts a
    snapshot older than the one the catalog holds (refused otherwise).
    """
    started = time.monotonic()
    with bind_job_context(catalog_name=name, catalog_version=version):
        log.info(
            "command_received", command=ACTOR_IMPORT, name=name, version=version, source=source
        )
        target: _Target | None = None
        stage = "resolve"
        try:
            adapter = find_adapter(adapters, name)
            latest: CatalogSnapshot | None = None
            if version is None:
                stage = "fetch"
                latest = fetch_latest(adapter, fetcher, source)
                version = latest.catalog.version
            stage = "mark"
            target, created = _create_or_mark(engine, adapter, version, source)
            metrics.COMMANDS_RECEIVED.labels(actor=ACTOR_IMPORT, catalog=_label(target)).inc()
            return _attempt(
                engine, adapter, fetcher, target, ACTOR_IMPORT, source or target.source_url,
                created=created, started=started, will_retry=will_retry, force=force,
                fetched=latest,
            )  # fmt: skip
        except BaseException as exc:
            if target is None:  # no row to write to: the log line is all there is
                _failed_before_marking(exc, ACTOR_IMPORT, stage, will_retry)
            raise


def fetch_latest(adapter: Any, fetcher: Any, source: str | None) -> CatalogSnapshot:
    """The snapshot of the latest version upstream offers (fetch_snapshot with version None),
    unconditionally: the row, and so its validators, is not known before the version is."""
    snapshot = fetch_snapshot(adapter, fetcher, version=None, source=source or "", validators=None)
    if snapshot is None or not snapshot.catalog.version:
        raise UpstreamError(
            f"{adapter.name} upstream at {source or adapter.default_source()} offers no "
            "catalog versions; name one with --version",
            transient=False,
        )
    return snapshot
