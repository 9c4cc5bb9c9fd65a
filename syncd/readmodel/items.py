"""A package's whole list object, rendered by its writer (issue 16): a list page is then the
concatenation of its packages' stored texts.

Stored as two texts around the catalog's name, version and type (`head` ends after
`extensions`, `tail` holds `version_count` and `extension_count` up to the `versions` key):
those are spliced in per page (`catalog_fields`), so renaming a catalog renders nothing,
and so is the `versions` fragment stored beside them (`page_item`), not written twice.
The absolute URLs' base is the placeholder BASE, a raw control character: JSON text escapes
every control character inside
a string, so the stored text holds it only where a URL's base goes (`with_base`).

`package_object` is the one builder of the wire object, for the stored items and for the
routes that render on the fly (syncd/api/representation.package).
"""

from __future__ import annotations

import functools
import json
import uuid as uuid_module
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from syncd.db.tables import Catalog, Package, PackageParent, PackageReadModel
from syncd.domain import CatalogType
from syncd.readmodel.fragments import PACKAGES_PATH, dumps, nested_package

CATALOGS_PATH = "/api/marketplace-software-catalogs/"
BASE = "\x01"
_CHUNK = 5000
# The urls of the nested objects of an `extensions` fragment (see fragments.Fragment).
_EXTENSION_URL = '"url":"' + PACKAGES_PATH


def iso_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def type_display(catalog_type: str) -> str:
    try:
        return CatalogType(catalog_type).display
    except ValueError:
        return catalog_type


def link(base: str, collection: str, value: uuid_module.UUID) -> str:
    return f"{base}{collection}{value.hex}/"


def package_object(
    base: str,
    row: Any,
    cat: Any,
    *,
    parents: list[dict[str, Any]] | Any,
    extensions: list[dict[str, Any]] | Any,
    versions: list[dict[str, Any]] | Any,
) -> dict[str, Any]:
    """`cat` carries uuid, name, version and catalog_type of the package's catalog;
    `parents`, `extensions` and `versions` may be JSON text placed as it is."""
    return {
        "url": link(base, PACKAGES_PATH, row.uuid),
        "uuid": row.uuid.hex,
        "created": iso_datetime(row.created),
        "modified": iso_datetime(row.modified),
        "catalog": link(base, CATALOGS_PATH, cat.uuid),
        "catalog_uuid": cat.uuid.hex,
        "name": row.name,
        "description": row.description,
        "homepage": row.homepage,
        "categories": row.categories,
        "licenses": row.licenses,
        "maintainers": row.maintainers,
        "is_extension": row.is_extension,
        "is_local": row.is_local,
        "parent_softwares": parents,
        "extensions": extensions,
        "catalog_name": cat.name,
        "catalog_version": cat.version,
        "catalog_type": cat.catalog_type,
        "catalog_type_display": type_display(cat.catalog_type),
        "version_count": row.version_count,
        "extension_count": row.extension_count,
        "versions": versions,
    }


_HEAD_KEYS = (
    "url",
    "uuid",
    "created",
    "modified",
    "catalog",
    "catalog_uuid",
    "name",
    "description",
    "homepage",
    "categories",
    "licenses",
    "maintainers",
    "is_extension",
    "is_local",
    "parent_softwares",
    "extensions",
)
_TAIL_KEYS = ("version_count", "extension_count")
_BASED = frozenset({"url", "catalog"})  # values that are a URL of this API


class _Raw(str):
    """JSON text placed as it is."""


# fragments.dumps's encoding; one encoder for every value (an item has 19 of them, a Spack
# import 9,000 items: building an encoder per value was most of the render).
_VALUE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _encode(key: str, value: Any) -> str:
    if isinstance(value, _Raw):
        text = str(value)
    elif key in _BASED:
        text = '"' + BASE + _VALUE(value)[1:]
    else:
        text = _VALUE(value)
    return f'"{key}":{text}'  # our own keys: nothing to escape


def _nested(item: dict[str, Any]) -> str:
    return "{" + ",".join(_encode(k, v) for k, v in item.items()) + "}"


@functools.cache
def catalog_fields(name: str, version: str, catalog_type: str) -> str:
    """What goes between an item's head and tail; few catalogs, so kept once each."""
    return (
        f',"catalog_name":{dumps(name)},"catalog_version":{dumps(version)}'
        f',"catalog_type":{dumps(catalog_type)}'
        f',"catalog_type_display":{dumps(type_display(catalog_type))},'
    )


def with_base(text: str, base: str) -> str:
    """A stored text with its URLs made absolute."""
    return text.replace(BASE, json.dumps(base, ensure_ascii=False)[1:-1])


def page_item(head: str, fields: str, tail: str, versions: str) -> str:
    """A package's object on a page (its URLs' base still the placeholder)."""
    return head + fields + tail + versions + "}"


def item_texts(row: Any, parents: list[dict[str, Any]], extensions: str) -> tuple[str, str]:
    """(head, tail) of a package: `row` its columns with catalog_uuid; `parents` nested with
    paths as urls; `extensions` its stored fragment's text."""
    cat = _CatalogUuid(row.catalog_uuid)
    based_extensions = extensions.replace(_EXTENSION_URL, '"url":"' + BASE + PACKAGES_PATH)
    obj = package_object(
        "",
        row,
        cat,
        parents=_Raw("[" + ",".join(_nested(parent) for parent in parents) + "]"),
        extensions=_Raw(based_extensions),
        versions=None,
    )
    head = "{" + ",".join(_encode(key, obj[key]) for key in _HEAD_KEYS)
    tail = ",".join(_encode(key, obj[key]) for key in _TAIL_KEYS) + ',"versions":'
    return head, tail


class _CatalogUuid:
    __slots__ = ("catalog_type", "name", "uuid", "version")

    def __init__(self, value: uuid_module.UUID) -> None:
        self.uuid = value
        self.name = self.version = self.catalog_type = ""


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


def _parents(conn: Connection, package_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each package's parents as nested objects (by name, then id, as the route orders
    them), their versions in the nested order."""
    links = list(
        conn.execute(
            select(PackageParent.package_id, Package.id, Package.uuid, Package.name)
            .join(Package, Package.id == PackageParent.parent_id)
            .where(PackageParent.package_id.in_(package_ids))
        )
    )
    links.sort(key=lambda link: (link.package_id, link.name, link.id))
    from syncd.readmodel.store import version_names  # (store imports this module)

    names = version_names(conn, {link.id for link in links})
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for link_row in links:
        found[link_row.package_id].append(
            nested_package("", link_row.uuid, link_row.name, names[link_row.id])
        )
    return found


def store_items(conn: Connection, catalog_id: int, package_ids: Collection[int] | None) -> None:
    """Render the items of the stored rows of `package_ids` (None: the catalog's), from
    their fragments just stored, in the caller's transaction. PostgreSQL built them with
    the rows (pg_items); what it left (an unusual column shape) and SQLite's are rendered
    here."""
    ids = None if package_ids is None else sorted(set(package_ids))
    if conn.dialect.name == "postgresql":
        from syncd.readmodel import pg_items  # (a sibling; kept out of SQLite's imports)

        ids = pg_items.unrendered(conn, catalog_id, ids)
    elif ids is None:
        ids = list(
            conn.execute(
                select(PackageReadModel.package_id).where(PackageReadModel.catalog_id == catalog_id)
            ).scalars()
        )
    store_python_items(conn, ids)


def store_python_items(conn: Connection, ids: Sequence[int]) -> None:
    """Render the items of the stored rows of `ids` in Python (the reference rendering)."""
    statement = (
        select(
            *(getattr(Package, key).label(key) for key in _PACKAGE_KEYS),
            Catalog.uuid.label("catalog_uuid"),
            PackageReadModel.extensions,
        )
        .join(Catalog, Catalog.id == Package.catalog_id)
        .join(PackageReadModel, PackageReadModel.package_id == Package.id)
    )
    for chunk in _chunks(ids):
        parents = _parents(conn, chunk)
        values = []
        for row in conn.execute(statement.where(Package.id.in_(chunk))):
            head, tail = item_texts(row, parents.get(row.id, []), row.extensions)
            values.append({"pid": row.id, "head": head, "tail": tail})
        if values:
            conn.execute(
                update(PackageReadModel)
                .where(PackageReadModel.package_id == bindparam("pid"))
                .values(item_head=bindparam("head"), item_tail=bindparam("tail")),
                values,
            )


# The package columns an item shows (and its id).
_PACKAGE_KEYS = (
    "id",
    "uuid",
    "created",
    "modified",
    "name",
    "description",
    "homepage",
    "categories",
    "licenses",
    "maintainers",
    "is_extension",
    "is_local",
    "version_count",
    "extension_count",
)
