"""Rows of the package, version and target lists turned into their wire objects.

Apart from the queries because what a page embeds (parents, target counts) is loaded here
with one query per page, never one per row, once the page is known. A package's versions
(with their targets) and extensions are its stored list fragment (syncd/readmodel/),
placed into the answer as JSON text.
"""

from __future__ import annotations

import functools
import uuid as uuid_module
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from syncd.api import representation
from syncd.api.pagination import RawJson
from syncd.api.software_filters import _OTHER_PACKAGE
from syncd.db.tables import PackageParent, Target, Version
from syncd.readmodel import read_fragments
from syncd.readmodel.store import NESTED_VERSION_ORDER

# The keys a package's fragment fills: a `?field=` naming neither skips reading it.
_EMBEDDED = frozenset({"extensions", "versions"})


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


def render_packages(
    session: Session, base: str, rows: list[Any], fields: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """A list page, each package as its retrieve answers it: parents read for the page,
    versions and extensions from the stored fragments (skipped when `fields`, the page's
    `?field=`, names neither)."""
    ids = [row.id for row in rows]
    parents = _related(session, base, ids, parents=True)
    wanted = set(fields)
    if wanted and not wanted & _EMBEDDED:
        fragments = {}
    else:
        fragments = {
            package_id: fragment.with_base(base)
            for package_id, fragment in read_fragments(session.connection(), ids).items()
        }
    items = []
    for row in rows:
        fragment = fragments.get(row.id)
        items.append(
            representation.package(
                base,
                row,
                _catalog_ref(row),
                parents=parents.get(row.id, []),
                extensions=RawJson(fragment.extensions) if fragment else [],
                versions=RawJson(fragment.versions) if fragment else [],
            )
        )
    return items


def render_package_detail(session: Session, base: str, row: Any) -> dict[str, Any]:
    """The retrieve: the list's object, the same fragment embedded."""
    return render_packages(session, base, [row])[0]


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
    return versions_with_counts(base, rows, _target_counts(session, [row.id for row in rows]))


def versions_with_counts(
    base: str, rows: list[Any], counts: Mapping[int, int]
) -> list[dict[str, Any]]:
    """The version list's objects of `rows`, each version's target count from `counts`
    (absent: none)."""
    return [
        representation.version(
            base,
            row,
            package_uuid=row.package_uuid,
            package_name=row.package_name,
            catalog_uuid=row.catalog_uuid,
            catalog_type=row.catalog_type,
            target_count=counts.get(row.id, 0),
            package_metadata=row.package_metadata,
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
