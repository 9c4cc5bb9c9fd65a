"""The commands import a catalog and update a catalog, as plain functions (no queue, no retries).
Guarantees: every attempt is stamped on its row first; a failure leaves the contents untouched.
Does not: retry, schedule or queue; the caller decides on a retry with `is_transient`.

They take their dependencies (engine, adapters, fetcher) as parameters; the worker's actors,
`syncd import` in the embedded mode and tests call them the same way.

One attempt, for both commands:
1. mark the attempt: last_update_attempt = now and update_errors cleared, committed before
   anything slow happens (import creates the row here, race-free);
2. fetch the snapshot from the adapter (conditional: None = upstream not modified); an
   import without a version fetches the latest first and names its row after it, so the
   file is downloaded once;
3. refuse a snapshot older than the one the catalog holds (a stale mirror; permanent,
   `force` accepts it), else hand it to syncd.sync.sync_catalog, which writes contents in
   one transaction under the catalog's lock;
4. success: last_successful_update = now, and update_errors = the sync's warnings (upstream
   data left out or stored altered, usually none). Failure: update_errors = what failed,
   where and why; the catalog's contents stay as they were; the exception is re-raised so
   that the worker can decide about a retry (`is_transient`).

Clearing update_errors when an attempt starts makes the row tell its state: an attempt is
running while last_update_attempt > last_successful_update and update_errors is empty, it
failed when update_errors is set and last_successful_update did not catch up, it succeeded
when last_successful_update caught up (update_errors then holds its warnings, if any).
`syncd update --wait` follows exactly that.

Each attempt is also one run of the sync history (syncd/service/runs.py): written in the
sync's transaction when it wrote rows, with its changes and its `catalog.synced` event; in a
short transaction of its own otherwise (unchanged, failed, refused).

Dry runs (dry_run_import, dry_run_update; syncd/service/dry_run.py) take the same steps
but write nothing: no mark, no stamps, the sync planned and rolled back.

`hand_write` (syncd/service/hand_writes.py) is the other kind of command: staff writing a
package, version or target through the API, in one transaction under the catalog's lock.
"""

from syncd.service.abandoned import record_abandoned
from syncd.service.attempts import parse_uuid
from syncd.service.dry_run import DryRunResult, dry_run_import, dry_run_update
from syncd.service.failures import is_transient
from syncd.service.hand_writes import hand_write
from syncd.service.importing import import_catalog
from syncd.service.resolving import adapter_for, find_adapter
from syncd.service.running import CommandResult
from syncd.service.runs import TRIGGER_DEFAULT, RunContext
from syncd.service.updating import update_catalog

__all__ = [
    "TRIGGER_DEFAULT",
    "CommandResult",
    "DryRunResult",
    "RunContext",
    "adapter_for",
    "dry_run_import",
    "dry_run_update",
    "find_adapter",
    "hand_write",
    "import_catalog",
    "is_transient",
    "parse_uuid",
    "record_abandoned",
    "update_catalog",
]
