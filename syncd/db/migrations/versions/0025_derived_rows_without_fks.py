"""Derived rows follow their package by a trigger, not by foreign keys

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05

package_read_model, package_facet and package_search held foreign keys to package (and the
read model one to catalog), each checked by PostgreSQL per inserted row: 0.17 + 0.04 + 0.08 s
of EXPLAIN ANALYZE trigger time for a Spack + EESSI import's 77,653 derived rows. They only
ever served ON DELETE CASCADE: their writers derive them from the package rows in the same
statement (syncd/readmodel/). A trigger on package now deletes a deleted package's derived
rows in the same statement: on PostgreSQL once per statement from the transition table
(set-wise: a whole EESSI catalog's in ~60 ms where the cascades took ~100-200 ms), on
SQLite per row (it has no transition tables).

version.catalog_id and target.catalog_id lose their foreign keys too: 0.13 s and 0.41 s of
per-row checks for the same import, and their catalog's deletion already reaches them
through package -> version -> target (an EESSI catalog's DELETE took 210-220 ms without
them, 255-275 ms with). SQLite rebuilds the tables to drop them (batch mode; indexes kept).

(Revises 0023: 0024 is being written on another branch; the lead re-points it at merge.)
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DERIVED = ("package_read_model", "package_facet", "package_search")
TRIGGER = "package_derived_delete"
FUNCTION = "syncd_package_derived_delete"
# (table, column, referred table): the foreign keys dropped, per backend.
DERIVED_FKS = (
    ("package_read_model", "package_id", "package"),
    ("package_read_model", "catalog_id", "catalog"),
    ("package_facet", "package_id", "package"),
    ("package_search", "package_id", "package"),
)
CATALOG_FKS = (("version", "catalog_id", "catalog"), ("target", "catalog_id", "catalog"))


def _fk(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def _pg_upgrade() -> None:
    deletes = "\n".join(
        f"    DELETE FROM {table} AS d USING gone AS g WHERE d.package_id = g.id;"
        for table in DERIVED
    )
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
        {deletes}
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON package REFERENCING OLD TABLE AS gone "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
    )
    for table, column, referred in DERIVED_FKS + CATALOG_FKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {_fk(table, column, referred)}")


def _pg_downgrade() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON package")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    for table, column, referred in DERIVED_FKS + CATALOG_FKS:
        # None should exist; one would fail the constraint's validation.
        op.execute(
            f"DELETE FROM {table} WHERE NOT EXISTS "
            f"(SELECT 1 FROM {referred} AS r WHERE r.id = {table}.{column})"
        )
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {_fk(table, column, referred)} "
            f"FOREIGN KEY ({column}) REFERENCES {referred} (id) ON DELETE CASCADE"
        )


def _by_table() -> dict[str, list[tuple[str, str]]]:
    # One batch per table: each batch copies its table whole (package_read_model has two).
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, referred in DERIVED_FKS + CATALOG_FKS:
        found.setdefault(table, []).append((column, referred))
    return found


def _sqlite_upgrade() -> None:
    for table, fks in _by_table().items():
        with op.batch_alter_table(table) as batch_op:
            for column, referred in fks:
                batch_op.drop_constraint(_fk(table, column, referred), type_="foreignkey")
    deletes = " ".join(f"DELETE FROM {table} WHERE package_id = OLD.id;" for table in DERIVED)
    op.execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON package FOR EACH ROW BEGIN {deletes} END")


def _sqlite_downgrade() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
    for table, fks in _by_table().items():
        for column, referred in fks:
            op.execute(f"DELETE FROM {table} WHERE {column} NOT IN (SELECT id FROM {referred})")
        with op.batch_alter_table(table) as batch_op:
            for column, referred in fks:
                batch_op.create_foreign_key(
                    _fk(table, column, referred), referred, [column], ["id"], ondelete="CASCADE"
                )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _pg_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _pg_downgrade()
    else:
        _sqlite_downgrade()
