"""What the two databases' renderers (pg_render.py, sqlite_render.py) share around their own
SELECT of the nested versions: which rows a render reads (a catalog, or some of its
packages), the reads of the `versions` JSON text, and the statement that stores fragments."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, text

_STORE = """
INSERT INTO package_read_model (package_id, catalog_id, format, extensions, versions)
SELECT p.id, p.catalog_id, :format, '[]', coalesce(agg.versions, '[]')
FROM package AS p LEFT JOIN ({select}) AS agg ON agg.package_id = p.id
WHERE {packages}
"""
# A target's version and package are of its catalog: said for them too, so that a first
# import's hash joins (no statistics yet) read the catalog's rows, not the database's.
_OF_CATALOG = {
    "targets": "t.catalog_id = :c AND tv.catalog_id = :c AND tp.catalog_id = :c",
    "versions": "v.catalog_id = :c",
    "packages": "p.catalog_id = :c",
}
_OF_PACKAGES = {
    "targets": "t.version_id IN (SELECT id FROM version WHERE package_id IN :ids)",
    "versions": "v.package_id IN :ids",
    "packages": "p.catalog_id = :c AND p.id IN :ids",
}
_CHUNK = 5000


def hold_catalog(conn: Connection, catalog_id: int) -> None:
    """What the derived rows' foreign keys also did on PostgreSQL (dropped by migration
    0025): a writer's derived rows never outlive their package. The catalog's deletion (the
    API's takes no sync lock) waits for this transaction, or, when it came first, this
    transaction's renders read after it and find none of its packages. SQLite has one writer."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT 1 FROM catalog WHERE id = :c FOR KEY SHARE"), {"c": catalog_id})


def _versions(template: str, where: dict[str, str]) -> str:
    """`template`: a database's SELECT of (package_id, versions JSON text), with {targets}
    and {versions} where its conditions go."""
    return template.replace("{targets}", where["targets"]).replace("{versions}", where["versions"])


def versions_json(
    conn: Connection, template: str, catalog_id: int | None, package_ids: Sequence[int]
) -> dict[int, str]:
    """The `versions` JSON text of those of `package_ids` that have versions (with
    `catalog_id`: of every package of that catalog)."""
    if catalog_id is not None:
        rows = conn.execute(text(_versions(template, _OF_CATALOG)), {"c": catalog_id})
        return {int(row[0]): str(row[1]) for row in rows}
    sql = _versions(template, _OF_PACKAGES)
    statement = text(sql).bindparams(bindparam("ids", expanding=True))
    found: dict[int, str] = {}
    for start in range(0, len(package_ids), _CHUNK):
        chunk = list(package_ids[start : start + _CHUNK])
        found.update((int(row[0]), str(row[1])) for row in conn.execute(statement, {"ids": chunk}))
    return found


def store_statement(
    template: str, catalog_id: int, package_ids: Sequence[int] | None, fmt: int
) -> tuple[TextClause, dict[str, Any]]:
    """The INSERT of the fragments of the catalog's `package_ids` (None: all its packages),
    their `extensions` as `[]`, and its parameters."""
    where = _OF_CATALOG if package_ids is None else _OF_PACKAGES
    sql = _STORE.replace("{select}", _versions(template, where))
    statement = text(sql.replace("{packages}", where["packages"]))
    params: dict[str, Any] = {"c": catalog_id, "format": fmt}
    if package_ids is not None:
        statement = statement.bindparams(bindparam("ids", expanding=True))
        params["ids"] = list(package_ids)
    return statement, params


@contextmanager
def nested_loops(conn: Connection) -> Iterator[None]:
    """Nested loops allowed for a statement that starts from few rows: a first import turns
    them off for its whole-catalog statements (readmodel._derivation_plans), and then
    the gpu_arch facets hashed every version and target of the database (0.6-0.9 s, not
    10 ms)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    previous = conn.execute(text("SELECT current_setting('enable_nestloop')")).scalar_one()
    conn.execute(text("SELECT set_config('enable_nestloop', 'on', true)"))
    yield  # (a failure aborts the transaction, which undoes the local setting by itself)
    conn.execute(text("SELECT set_config('enable_nestloop', :v, true)"), {"v": previous})
