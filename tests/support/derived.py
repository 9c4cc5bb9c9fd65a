"""The derived rows (package_read_model, package_facet, package_search) against the rows they
follow: since migration 0025 no foreign key holds them, the trigger package_derived_delete
does, so a test of a deletion asks that none outlived its package (nor a version or target
its catalog)."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

DERIVED = ("package_read_model", "package_facet", "package_search")

_ORPHANS = {
    **{
        table: f"SELECT count(*) FROM {table} AS d "
        "WHERE NOT EXISTS (SELECT 1 FROM package AS p WHERE p.id = d.package_id)"
        for table in DERIVED
    },
    "package_read_model of another catalog": "SELECT count(*) FROM package_read_model AS d "
    "JOIN package AS p ON p.id = d.package_id WHERE p.catalog_id <> d.catalog_id",
    "version": "SELECT count(*) FROM version AS v "
    "WHERE NOT EXISTS (SELECT 1 FROM catalog AS c WHERE c.id = v.catalog_id)",
    "target": "SELECT count(*) FROM target AS t "
    "WHERE NOT EXISTS (SELECT 1 FROM catalog AS c WHERE c.id = t.catalog_id)",
}


def orphans(conn: Connection) -> dict[str, int]:
    """Rows without their package (derived) or catalog (versions, targets), per table."""
    return {name: int(conn.execute(text(query)).scalar_one()) for name, query in _ORPHANS.items()}


def assert_no_orphans(engine: Engine) -> None:
    with engine.connect() as conn:
        assert orphans(conn) == dict.fromkeys(_ORPHANS, 0)


def derived_packages(engine: Engine) -> dict[str, set[int]]:
    """The package ids each derived table holds rows of."""
    with engine.connect() as conn:
        return {
            table: set(conn.execute(text(f"SELECT DISTINCT package_id FROM {table}")).scalars())
            for table in DERIVED
        }
