"""Sync history rows (sync_run, sync_change) written directly, as the shared contract of
issue 15 shapes them, so the read side (API, feeds) is tested without running syncs.

`add_run` writes one run and its changes; `seed_history` a small known history over the API
fixtures' two catalogs (tests/integration/api/conftest.py's `sample`), a deleted catalog and
an import that failed before its catalog existed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from syncd.db.process_tables import SyncChange, SyncRun

T0 = datetime(2026, 2, 1, tzinfo=UTC)
SECRET_URL = "https://mirror-user:s3cret@mirror.example/eessi/"

# (change, package_name, version, module_version, details)
ChangeRow = tuple[str, str, str, str, dict[str, Any]]


def counts(created: int = 0, updated: int = 0, deleted: int = 0, unchanged: int = 0) -> Any:
    one = {"created": created, "updated": updated, "deleted": deleted, "unchanged": unchanged}
    return {"packages": dict(one), "versions": dict(one), "targets": dict(one)}


def add_run(
    factory: sessionmaker[Session],
    *,
    catalog_uuid: uuid.UUID | None,
    catalog_name: str,
    catalog_version: str,
    started: datetime,
    outcome: str = "succeeded",
    trigger: str = "scheduler",
    command: str = "update_catalog",
    changes: list[ChangeRow] | None = None,
    validators: dict[str, Any] | None = None,
    error: str = "",
    duration: timedelta = timedelta(minutes=2),
) -> uuid.UUID:
    """One run and its changes (created = the run's finish, as the writer stamps them)."""
    finished = started + duration
    changes = changes or []
    with factory() as session:
        run = SyncRun(
            catalog_uuid=catalog_uuid,
            catalog_name=catalog_name,
            catalog_version=catalog_version,
            catalog_type="binary_runtime",
            trigger=trigger,
            command=command,
            message_id=uuid.uuid4().hex,
            started=started,
            finished=finished,
            outcome=outcome,
            validators=validators or {},
            counts=counts(created=len(changes)),
            change_count=len(changes),
            error=error,
        )
        session.add(run)
        session.flush()
        session.add_all(
            SyncChange(
                run_id=run.id,
                catalog_uuid=catalog_uuid,
                created=finished,
                change=change,
                package_name=package,
                version=version,
                module_version=module_version,
                details=details,
            )
            for change, package, version, module_version, details in changes
        )
        session.commit()
        return run.uuid


@dataclass
class History:
    """The seeded runs by name, oldest first: deleted_import, eessi_import, eessi_update,
    spack_update, eessi_unchanged, eessi_failed, spack_refused, orphan_failed."""

    runs: dict[str, uuid.UUID]
    deleted_catalog: uuid.UUID

    @property
    def newest_first(self) -> list[uuid.UUID]:
        return list(reversed(self.runs.values()))


EESSI_UPDATE: list[ChangeRow] = [
    ("package_added", "GROMACS", "", "", {}),
    ("package_added", "LAMMPS", "", "", {}),
    ("package_added", "<script>alert('x')</script> & co", "", "", {}),
    ("package_removed", "OldTool", "", "", {}),
    ("version_updated", "python", "3.11.3", "3.11.3-GCCcore-12.3.0", {"fields": ["metadata"]}),
    (
        "target_added",
        "python",
        "3.11.3",
        "3.11.3-GCCcore-12.3.0",
        {"targets": 2, "names": ["x86_64/amd/zen3", "x86_64/amd/zen4"]},
    ),
]
SPACK_UPDATE: list[ChangeRow] = [
    ("version_added", "gromacs", "2024.2", "", {}),
    ("version_removed", "gromacs", "2023.3", "", {}),
]


def seed_history(factory: sessionmaker[Session], eessi: uuid.UUID, spack: uuid.UUID) -> History:
    deleted = uuid.uuid4()
    runs: dict[str, uuid.UUID] = {}

    def run(name: str, days: float, **fields: Any) -> None:
        runs[name] = add_run(factory, started=T0 + timedelta(days=days), **fields)

    eessi_names = {"catalog_uuid": eessi, "catalog_name": "EESSI", "catalog_version": "2023.06"}
    spack_names = {"catalog_uuid": spack, "catalog_name": "Spack", "catalog_version": "2026.07.01"}
    run(
        "deleted_import",
        -10,
        catalog_uuid=deleted,
        catalog_name="Gone",
        catalog_version="1",
        trigger="cli",
        command="",
        changes=[("package_added", "zlib", "", "", {})],
    )
    run(
        "eessi_import",
        1,
        **eessi_names,
        trigger="api",
        command="import_catalog",
        changes=[("catalog_imported", "", "", "", {"packages": 3, "versions": 4, "targets": 5})],
    )
    run("eessi_update", 2, **eessi_names, changes=EESSI_UPDATE)
    run("spack_update", 2.5, **spack_names, trigger="cli", command="", changes=SPACK_UPDATE)
    run(
        "eessi_unchanged",
        3,
        **eessi_names,
        outcome="unchanged",
        validators={SECRET_URL: {"etag": '"abc"', "last_modified": "x"}, "hash": "f00"},
    )
    run(
        "eessi_failed",
        4,
        **eessi_names,
        outcome="failed",
        trigger="message",
        error=f"Download failed: {SECRET_URL} answered 503 (will retry)",
    )
    run(
        "spack_refused",
        5,
        **spack_names,
        outcome="refused",
        trigger="message",
        error="Refused: 7 of 10 packages would be removed (override: syncd update --force)",
    )
    run(
        "orphan_failed",
        6,
        catalog_uuid=None,
        catalog_name="Nope",
        catalog_version="",
        trigger="api",
        command="import_catalog",
        outcome="failed",
        error="Unknown adapter",
    )
    return History(runs=runs, deleted_catalog=deleted)
