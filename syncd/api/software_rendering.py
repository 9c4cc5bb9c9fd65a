"""Rows of the package, version and target lists turned into their wire objects.

Apart from the queries because what a page embeds (parents, extensions, versions, target
counts) is loaded here with one query per page, never one per row, once the page is known.
"""

from __future__ import annotations

import functools
import uuid as uuid_module
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from syncd.api import representation
from syncd.api.software_filters import _OTHER_PACKAGE
from syncd.db.tables import PackageParent, Target, Version

# A package's versions and a version's targets as Waldur nests them (its models' default
# orderings, which its prefetches keep): versions oldest first (by the upstream's version
# semantics, where Waldur compares strings), then module version; targets newest first.
NESTED_VERSION_ORDER = [Version.sort_index.desc(), Version.module_version, Version.id]
NESTED_TARGET_ORDER = [Target.created.desc(), Target.id]


@dataclass(frozen=True)
class _CatalogRef:
    uuid: uuid_module.UUID
    name: str
    version: str
    catalog_type: str


def _catalog_ref(row: Any) -> _CatalogRef:
    return _CatalogRef(row.catalog_uuid, row.catalog_name, row.catalog_version, row.catalog_type)


def _version_names(session: Session, package_ids: Iterable[int]) -> dict[int, list[str]]:
    """Version strings per package, in NESTED_VERSION_ORDER, for the nested package objects."""
    ids = list(set(package_ids))
    found: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return found
    rows = session.connection().execute(_version_names_statement(), {"ids": ids})
    for package_id, version in rows:
        found[package_id].append(version)
    return found


# The statements of the embedded objects, built once (their ids bound at execution): a
# statement built per request costs more CPU than its execution.
@functools.cache
def _version_names_statement() -> Select:
    return (
        select(Version.package_id, Version.version)
        .where(Version.package_id.in_(bindparam("ids", expanding=True)))
        .order_by(Version.package_id, *NESTED_VERSION_ORDER)
    )


@functools.cache
def _related_statement(parents: bool) -> Select:
    other = _OTHER_PACKAGE
    mine, theirs = (
        (PackageParent.package_id, PackageParent.parent_id)
        if parents
        else (PackageParent.parent_id, PackageParent.package_id)
    )
    return (
        select(mine, other.id, other.uuid, other.name)
        .join(other, other.id == theirs)
        .where(mine.in_(bindparam("ids", expanding=True)))
        .order_by(other.name, other.id)
    )


def _related(
    session: Session, base: str, package_ids: list[int], *, parents: bool
) -> dict[int, list[dict[str, Any]]]:
    """Nested parents (parents=True) or extensions of each package, with their versions."""
    if not package_ids:
        return {}
    rows = session.connection().execute(_related_statement(parents), {"ids": package_ids}).all()
    versions = _version_names(session, (row[1] for row in rows))
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for owner, other_id, other_uuid, other_name in rows:
        found[owner].append(
            representation.nested_package(base, other_uuid, other_name, versions.get(other_id, []))
        )
    return found


def render_packages(session: Session, base: str, rows: list[Any]) -> list[dict[str, Any]]:
    """A list page: parents embedded; versions and extensions only counted (see issue 3)."""
    parents = _related(session, base, [row.id for row in rows], parents=True)
    return [
        representation.package(
            base,
            row,
            _catalog_ref(row),
            parents=parents.get(row.id, []),
            extensions=[],
            versions=[],
        )
        for row in rows
    ]


def _nested_versions(session: Session, package_id: int) -> list[dict[str, Any]]:
    versions = list(
        session.execute(
            select(Version).where(Version.package_id == package_id).order_by(*NESTED_VERSION_ORDER)
        ).scalars()
    )
    targets: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if versions:
        for target in session.execute(
            select(Target)
            .where(Target.version_id.in_([v.id for v in versions]))
            .order_by(*NESTED_TARGET_ORDER)
        ).scalars():
            targets[target.version_id].append(representation.nested_target(target))
    return [representation.nested_version(v, targets.get(v.id, [])) for v in versions]


def render_package_detail(session: Session, base: str, row: Any) -> dict[str, Any]:
    package = row
    return representation.package(
        base,
        package,
        _catalog_ref(row),
        parents=_related(session, base, [package.id], parents=True).get(package.id, []),
        extensions=_related(session, base, [package.id], parents=False).get(package.id, []),
        versions=_nested_versions(session, package.id),
    )


def _target_counts(session: Session, version_ids: list[int]) -> dict[int, int]:
    if not version_ids:
        return {}
    rows = session.connection().execute(
        select(Target.version_id, func.count())
        .where(Target.version_id.in_(version_ids))
        .group_by(Target.version_id)
    )
    return {version_id: int(count) for version_id, count in rows}


def render_versions(session: Session, base: str, rows: list[Any]) -> list[dict[str, Any]]:
    counts = _target_counts(session, [row.id for row in rows])
    return [
        representation.version(
            base,
            row,
            package_uuid=row.package_uuid,
            package_name=row.package_name,
            catalog_uuid=row.catalog_uuid,
            catalog_type=row.catalog_type,
            target_count=counts.get(row.id, 0),
        )
        for row in rows
    ]


def render_targets(base: str, rows: list[Any]) -> list[dict[str, Any]]:
    return [
        representation.target(
            base,
            row,
            version_uuid=row.version_uuid,
            package_uuid=row.package_uuid,
            package_name=row.package_name,
        )
        for row in rows
    ]
