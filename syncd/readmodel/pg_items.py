"""The stored items' texts (syncd/readmodel/items.py: `item_head`, `item_tail`) built by
PostgreSQL in the statement that inserts the package's row with its fragments, rather than read
into Python, encoded there and written back by an executemany (3.5 s of a 21 s Spack import:
issue 24's import budget).

Byte for byte what items.item_texts writes: compact separators, strings escaped as Python's
json.dumps(ensure_ascii=False) escapes them (PostgreSQL's to_json escapes the same
characters the same way: `"`, `\\`, \\b \\f \\n \\r \\t, other controls as lowercase \\u00xx),
parents ordered by name in code-point order (COLLATE "C"), each parent's versions once, in the
nested order. A package whose categories, licenses or maintainers are not a list of strings
(never written by the adapters; a hand edit could) is left for items.py's Python renderer:
the INSERT leaves its `item_head` NULL (`unrendered` finds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, TextClause, text

from syncd.readmodel.fragments import PACKAGES_PATH

CATALOGS_PATH = "/api/marketplace-software-catalogs/"


def _string_list(column: str) -> str:
    """A jsonb list of strings as compact JSON text."""
    return (
        "(SELECT '[' || coalesce(string_agg(to_json(e.value #>> '{}')::text, ',' "
        f"ORDER BY e.n), '') || ']' FROM jsonb_array_elements({column}) "
        "WITH ORDINALITY AS e(value, n))"
    )


def _is_string_list(column: str) -> str:
    return (
        f"(jsonb_typeof({column}) = 'array' "
        f"AND NOT jsonb_path_exists({column}, '$[*] ? (@.type() != \"string\")'))"
    )


def _datetime(column: str) -> str:
    """items.iso_datetime: UTC, microseconds only when there are any, 'Z'."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"CASE WHEN {column} IS NULL THEN 'null' ELSE '\"' || "
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN extract(microseconds FROM {utc})::bigint % 1000000 <> 0 "
        f"THEN '.' || to_char({utc}, 'US') ELSE '' END || 'Z\"' END"
    )


def _boolean(column: str) -> str:
    return f"CASE WHEN {column} THEN 'true' WHEN NOT {column} THEN 'false' ELSE 'null' END"


def _string(column: str) -> str:
    return f"coalesce(to_json({column})::text, 'null')"


def _hex(column: str) -> str:
    return f"replace({column}::text, '-', '')"


_BASE = "chr(1)"  # items.BASE


def _version_names(ends: str, linked: str = "linked") -> str:
    """Each package of `linked`'s `ends` column with its version strings as a JSON list,
    each once, in the nested order (fragments.nested_package)."""
    return f"""
SELECT package_id, '[' || string_agg(to_json(version)::text, ',' ORDER BY first) || ']' AS names
FROM (
    SELECT package_id, version, min(n) AS first FROM (
        SELECT package_id, version, row_number() OVER (
            PARTITION BY package_id ORDER BY sort_index DESC, module_version, id) AS n
        FROM version WHERE catalog_id = :c AND package_id IN (SELECT {ends} FROM {linked})
    ) AS ordered GROUP BY package_id, version
) AS distinct_names GROUP BY package_id
"""


def _nested_packages(
    own: str, other: str, url: str, linked: str = "linked", names: str = "names"
) -> str:
    """For each package of `linked`'s `own` column, its packages of the `other` column as
    fragments.nested_package makes them, by name (code-point order) then id, as a JSON list;
    `url` the SQL text before a package's path (items.BASE, or nothing). Reads `names`."""
    return f"""
SELECT l.{own} AS package_id, '[' || string_agg('{{"uuid":"' || {_hex("o.uuid")}
    || '","name":' || to_json(o.name)::text
    || ',"url":"' || {url} || '{PACKAGES_PATH}' || {_hex("o.uuid")}
    || '/","versions":' || coalesce(n.names, '[]') || '}}',
    ',' ORDER BY o.name COLLATE "C", o.id) || ']' AS list
FROM {linked} AS l JOIN package AS o ON o.id = l.{other} AND o.catalog_id = :c
LEFT JOIN {names} AS n ON n.package_id = o.id
GROUP BY l.{own}
"""


_EXTENSION_URL = '"url":"' + PACKAGES_PATH
_HEAD = (
    '\'{"url":"\' || '
    + _BASE
    + f" || '{PACKAGES_PATH}' || {_hex('p.uuid')} || '/\"'"
    + f" || ',\"uuid\":\"' || {_hex('p.uuid')} || '\"'"
    + f" || ',\"created\":' || {_datetime('p.created')}"
    + f" || ',\"modified\":' || {_datetime('p.modified')}"
    + ' || \',"catalog":"\' || '
    + _BASE
    + f" || '{CATALOGS_PATH}' || {_hex('c.uuid')} || '/\"'"
    + f" || ',\"catalog_uuid\":\"' || {_hex('c.uuid')} || '\"'"
    + f" || ',\"name\":' || {_string('p.name')}"
    + f" || ',\"description\":' || {_string('p.description')}"
    + f" || ',\"homepage\":' || {_string('p.homepage')}"
    + f" || ',\"categories\":' || {_string_list('p.categories')}"
    + f" || ',\"licenses\":' || {_string_list('p.licenses')}"
    + f" || ',\"maintainers\":' || {_string_list('p.maintainers')}"
    + f" || ',\"is_extension\":' || {_boolean('p.is_extension')}"
    + f" || ',\"is_local\":' || {_boolean('p.is_local')}"
    + " || ',\"parent_softwares\":' || coalesce(pa.list, '[]')"
    + f" || ',\"extensions\":' || replace(r.extensions, '{_EXTENSION_URL}', "
    + f"'\"url\":\"' || {_BASE} || '{PACKAGES_PATH}')"
)
_TAIL = (
    "'\"version_count\":' || coalesce(p.version_count::text, 'null')"
    " || ',\"extension_count\":' || coalesce(p.extension_count::text, 'null')"
    " || ',\"versions\":'"
)
# Columns the SQL renders (lists of strings); otherwise the item stays NULL for Python. A
# CASE rather than a WHERE: the planner, guessing such a filter's selectivity, expected one
# row and looped over the parents once per package.
_SHAPES = " AND ".join(
    _is_string_list(f"p.{column}") for column in ("categories", "licenses", "maintainers")
)
# A package's row as one INSERT: its fragments (the `versions` of the renderer's SELECT,
# {versions}; its extensions) and its item around them. One statement rather than an INSERT
# and two UPDATEs of the rows just inserted: each UPDATE wrote every row again, and a row
# inserted by the same transaction has its foreign keys checked again on UPDATE (0.3-0.4 s
# of a first Spack import). `linked`/`parents`: the package's parents (its item);
# `xlinked`/`nested`: its extensions (its `extensions` fragment, store._extensions's).
_INSERT = f"""
WITH scope AS MATERIALIZED (SELECT id FROM package WHERE {{packages}}),
linked AS MATERIALIZED (
    SELECT package_id, parent_id FROM package_parent
    WHERE catalog_id = :c AND package_id IN (SELECT id FROM scope)
),
names AS MATERIALIZED ({_version_names("parent_id")}),
parents AS MATERIALIZED ({_nested_packages("package_id", "parent_id", _BASE)}),
xlinked AS MATERIALIZED (
    SELECT package_id, parent_id FROM package_parent
    WHERE catalog_id = :c AND parent_id IN (SELECT id FROM scope)
),
xnames AS MATERIALIZED ({_version_names("package_id", "xlinked")}),
nested AS MATERIALIZED ({_nested_packages("parent_id", "package_id", "''", "xlinked", "xnames")})
INSERT INTO package_read_model
    (package_id, catalog_id, format, extensions, versions, item_head, item_tail)
SELECT p.id, p.catalog_id, :format, coalesce(x.list, '[]'), coalesce(agg.versions, '[]'),
    CASE WHEN {_SHAPES} THEN {_HEAD.replace("r.extensions", "coalesce(x.list, '[]')")} END,
    CASE WHEN {_SHAPES} THEN {_TAIL} END
FROM package AS p JOIN catalog AS c ON c.id = p.catalog_id
LEFT JOIN ({{versions}}) AS agg ON agg.package_id = p.id
LEFT JOIN parents AS pa ON pa.package_id = p.id
LEFT JOIN nested AS x ON x.package_id = p.id
WHERE {{packages_p}}
"""
# Which rows the renderer's SELECT reads (sql_store's conditions, with an array parameter).
_OF_CATALOG = {
    "targets": "t.catalog_id = :c AND tv.catalog_id = :c AND tp.catalog_id = :c",
    "versions": "v.catalog_id = :c",
}
_OF_PACKAGES = {
    "targets": "t.version_id IN (SELECT id FROM version WHERE package_id = ANY(:ids))",
    "versions": "v.package_id = ANY(:ids)",
}


def store_statement(
    template: str, catalog_id: int, package_ids: Sequence[int] | None, fmt: int
) -> tuple[TextClause, dict[str, Any]]:
    """The INSERT of the rows (fragments and items) of the catalog's `package_ids` (None:
    all its packages), `template` the renderer's SELECT of (package_id, versions JSON text)
    with {targets} and {versions} where its conditions go; and its parameters. A row whose
    categories, licenses or maintainers are not a list of strings gets no item (NULL)."""
    some = package_ids is not None
    where = _OF_PACKAGES if some else _OF_CATALOG
    versions = template.replace("{targets}", where["targets"])
    versions = versions.replace("{versions}", where["versions"])
    # The condition also on the joined package row: the planner then knows how many come.
    packages = "catalog_id = :c" + (" AND id = ANY(:ids)" if some else "")
    qualified = "p.catalog_id = :c" + (" AND p.id = ANY(:ids)" if some else "")
    sql = _INSERT.replace("{packages}", packages).replace("{packages_p}", qualified)
    params: dict[str, Any] = {"c": catalog_id, "format": fmt}
    if package_ids is not None:
        params["ids"] = list(package_ids)
    return text(sql.replace("{versions}", versions)), params


def unrendered(conn: Connection, catalog_id: int, package_ids: Sequence[int] | None) -> list[int]:
    """The stored rows of the catalog's `package_ids` (None: all) without an item."""
    sql = (
        "SELECT r.package_id FROM package AS p JOIN package_read_model AS r"
        " ON r.package_id = p.id AND r.catalog_id = :c"
        " WHERE p.catalog_id = :c AND r.item_head IS NULL"
    )
    params: dict[str, object] = {"c": catalog_id}
    if package_ids is not None:
        sql += " AND p.id = ANY(:ids)"
        params["ids"] = list(package_ids)
    return sorted(conn.execute(text(sql), params).scalars())
