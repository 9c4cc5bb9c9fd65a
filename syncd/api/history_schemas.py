"""The run and change lists' vocabulary: their choices, filters and response shapes.

The choices are the shared contract of issue 15 (sync_run.trigger, sync_run.outcome,
sync_change.change); a filter value outside them is a 400 in Django's ChoiceField words
(errors._message), as django-filter's ChoiceFilter answers.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from syncd.api.filter_params import FilterDateTime, FilterUUID, _empty_is_absent
from syncd.api.schemas import FilterText


class RunTrigger(StrEnum):
    API = "api"
    SCHEDULER = "scheduler"
    MESSAGE = "message"
    CLI = "cli"


class RunOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    REFUSED = "refused"


class ChangeKind(StrEnum):
    PACKAGE_ADDED = "package_added"
    PACKAGE_REMOVED = "package_removed"
    PACKAGE_UPDATED = "package_updated"
    VERSION_ADDED = "version_added"
    VERSION_REMOVED = "version_removed"
    VERSION_UPDATED = "version_updated"
    TARGET_ADDED = "target_added"
    TARGET_REMOVED = "target_removed"
    CATALOG_IMPORTED = "catalog_imported"


# An empty value is no filter, as for every typed filter (filter_params.py).
FilterTrigger = Annotated[RunTrigger | None, BeforeValidator(_empty_is_absent)]
FilterOutcome = Annotated[RunOutcome | None, BeforeValidator(_empty_is_absent)]
FilterChange = Annotated[ChangeKind | None, BeforeValidator(_empty_is_absent)]


class RunFilters(BaseModel):
    catalog_uuid: FilterUUID = None
    outcome: FilterOutcome = None
    trigger: FilterTrigger = None
    started_after: FilterDateTime = Field(
        default=None, description="Runs started at or after this time (ISO 8601; naive = UTC)"
    )
    started_before: FilterDateTime = Field(
        default=None, description="Runs started at or before this time (ISO 8601; naive = UTC)"
    )


class ChangeFilters(BaseModel):
    catalog_uuid: FilterUUID = None
    run_uuid: FilterUUID = None
    change: FilterChange = None
    package_name: FilterText | None = Field(
        default=None, description="Part of the package name, case-insensitively"
    )
    since: FilterDateTime = Field(
        default=None, description="Changes recorded at or after this time (ISO 8601; naive = UTC)"
    )


class ChangeCounts(BaseModel):
    created: int
    updated: int
    deleted: int
    unchanged: int


class RunOut(BaseModel):
    url: str
    uuid: str
    catalog_uuid: str | None = Field(
        description="None for an import that failed before its catalog existed"
    )
    catalog_name: str
    catalog_version: str
    trigger: RunTrigger
    command: str = Field(description="import_catalog or update_catalog; empty for a CLI run")
    message_id: str
    started: datetime
    finished: datetime | None
    outcome: RunOutcome
    validators: dict[str, Any] = Field(
        description="What upstream said: ETag and Last-Modified per URL, the body's hash"
    )
    counts: dict[str, ChangeCounts] = Field(
        description="created/updated/deleted/unchanged per kind: packages, versions, targets"
    )
    change_count: int
    error: str = Field(description="Why a failed or refused run ended so (credentials hidden)")
    changes_url: str = Field(description="The changes list filtered to this run")


class ChangeOut(BaseModel):
    uuid: str
    run_uuid: str
    catalog_uuid: str | None
    catalog_name: str
    catalog_version: str
    created: datetime
    change: ChangeKind
    package_name: str
    version: str = Field(description="Empty for package_* and catalog_imported changes")
    module_version: str
    details: dict[str, Any] = Field(
        description='*_updated: {"fields": [...]}; target_*: {"targets": n, "names": [...]}; '
        'catalog_imported: {"packages": n, "versions": n, "targets": n}'
    )
