"""The stored read model of a catalog (package_read_model's fragments and items,
package_facet, package_search) equals a fresh rendering of its rows after every kind of sync
(a first import, an incremental refresh, a no-op, a deletion), on SQLite and PostgreSQL; and
PostgreSQL's items (rendered in SQL, syncd/readmodel/pg_items.py) equal the Python reference
rendering (items.store_python_items) byte for byte, unusual column shapes included."""

from __future__ import annotations

import uuid as uuid_module
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, event, select, update

from syncd.db.tables import Catalog, Package, PackageFacet, PackageReadModel, PackageSearch
from syncd.domain import PackageRecord, TargetRecord, VersionRecord
from syncd.readmodel import refresh_read_model, render_packages
from syncd.readmodel.items import store_python_items
from syncd.sync import sync_catalog
from tests.support.records import catalog_info, snapshot

# Strings JSON must escape (quotes, backslash, controls) and ones it must not (non-ASCII,
# DEL, U+2028); parents whose names sort apart by code point and by a locale's collation.
ODD = 'say "hi" \\ back\\slash\n\ttab\x01\x1f\x7f é 😀 \u2028 end'


def _target(name: str, *gpus: str) -> TargetRecord:
    return TargetRecord("cpu_architecture", name.split("/")[0], name, gpu_architectures=[*gpus])


def _packages() -> list[PackageRecord]:
    def parent(name: str, *numbers: str) -> PackageRecord:
        versions = [
            # The same version string twice (EESSI: one per toolchain module): shown once.
            VersionRecord(version=n, module_version=f"{n}-{tc}", targets=[_target("x86_64/zen2")])
            for n in numbers
            for tc in ("GCC", "foss")
        ]
        return PackageRecord(name=name, description=ODD, homepage=None, versions=versions)

    return [
        parent("Zeta", "2.0", "1.0"),
        parent("alpha", "3.1"),
        parent("Ärger", "0.9"),
        PackageRecord(
            name="ext " + ODD,
            description="an extension",
            homepage="https://example.org/?q=\"x\"&y='z'",
            categories=["a", ODD],
            licenses=["MIT", "GPL-3.0-or-later"],
            maintainers=["ünïcode", ""],
            is_extension=True,
            parent_names=["Ärger", "alpha", "Zeta"],
            versions=[
                VersionRecord(
                    version="1.2",
                    metadata={"toolchain": {"name": "foss", "version": "2023a"}},
                    targets=[_target("x86_64/zen3", "nvidia/cc80")],
                )
            ],
        ),
        PackageRecord(name="bare"),
    ]


def _catalog(engine: Engine) -> int:
    values = {"uuid": uuid_module.uuid4(), "name": "EESSI", "catalog_type": "binary_runtime"}
    with engine.begin() as conn:
        return int(
            conn.execute(
                Catalog.__table__.insert().values(version="2023.06", **values)
            ).inserted_primary_key[0]  # type: ignore[index]
        )


def _stored(conn: Connection, catalog_id: int) -> tuple[Any, Any, Any]:
    model = PackageReadModel
    rows = {
        r.package_id: (r.format, r.extensions, r.versions, r.item_head, r.item_tail)
        for r in conn.execute(
            select(
                model.package_id,
                model.format,
                model.extensions,
                model.versions,
                model.item_head,
                model.item_tail,
            ).where(model.catalog_id == catalog_id)
        )
    }
    ids = select(Package.id).where(Package.catalog_id == catalog_id)
    facet_rows = conn.execute(
        select(PackageFacet.kind, PackageFacet.value, PackageFacet.package_id).where(
            PackageFacet.package_id.in_(ids)
        )
    )
    search_rows = conn.execute(
        select(PackageSearch.package_id, PackageSearch.search_text).where(
            PackageSearch.package_id.in_(ids)
        )
    )
    return rows, set(map(tuple, facet_rows)), set(map(tuple, search_rows))


def _items(conn: Connection, catalog_id: int) -> dict[int, tuple[str, str]]:
    return {
        r.package_id: (r.item_head, r.item_tail)
        for r in conn.execute(
            select(
                PackageReadModel.package_id, PackageReadModel.item_head, PackageReadModel.item_tail
            ).where(PackageReadModel.catalog_id == catalog_id)
        )
    }


def _clear_items(conn: Connection, catalog_id: int) -> None:
    conn.execute(
        update(PackageReadModel)
        .where(PackageReadModel.catalog_id == catalog_id)
        .values(item_head=None, item_tail=None)
    )


def assert_fresh(engine: Engine, catalog_id: int, packages: int) -> None:
    with engine.connect() as conn:
        before = _stored(conn, catalog_id)
        assert len(before[0]) == packages
        assert all(row[3] and row[4] for row in before[0].values())
        # Everything derived again from nothing, as a first import derives it.
        ids = select(Package.id).where(Package.catalog_id == catalog_id)
        conn.execute(delete(PackageReadModel).where(PackageReadModel.catalog_id == catalog_id))
        for table in (PackageFacet, PackageSearch):
            conn.execute(delete(table).where(table.package_id.in_(ids)))
        refresh_read_model(conn, catalog_id, None)
        assert _stored(conn, catalog_id) == before
        # The database's items against the Python reference, also for shapes no adapter
        # writes (a hand edit's non-string categories, a whole-second time).
        odd = min(before[0])
        conn.execute(
            update(Package)
            .where(Package.id == odd)
            .values(
                categories=[1, {"a": [2.5, None]}],
                modified=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            )
        )
        # Rendered with the rows (PostgreSQL: in its INSERT), for the whole catalog as a
        # first import renders it and for some packages as a refresh does.
        rows = delete(PackageReadModel).where(PackageReadModel.catalog_id == catalog_id)
        conn.execute(rows)
        render_packages(conn, catalog_id, None)
        rendered = _items(conn, catalog_id)
        conn.execute(rows)
        render_packages(conn, catalog_id, sorted(rendered))
        assert _items(conn, catalog_id) == rendered
        _clear_items(conn, catalog_id)
        store_python_items(conn, sorted(rendered))
        assert _items(conn, catalog_id) == rendered
        assert '"modified":"2024-01-02T03:04:05Z"' in rendered[odd][0]
        conn.rollback()


def test_stored_read_model_is_a_fresh_rendering(engine: Engine) -> None:
    catalog_id = _catalog(engine)
    packages = _packages()
    sync_catalog(engine, catalog_id, snapshot(list(packages), info=catalog_info()))
    assert_fresh(engine, catalog_id, len(packages))

    # Incremental: a parent gains a version (its extension's item names it), one is renamed
    # away, a package comes.
    changed = _packages()
    changed[1].versions.append(VersionRecord(version="3.2", targets=[_target("aarch64/a64fx")]))
    changed[3].description = "changed " + ODD
    changed.append(PackageRecord(name="new", versions=[VersionRecord(version="1")]))
    sync_catalog(engine, catalog_id, snapshot(list(changed), info=catalog_info()))
    assert_fresh(engine, catalog_id, len(changed))

    # No-op.
    sync_catalog(engine, catalog_id, snapshot(list(changed), info=catalog_info()))
    assert_fresh(engine, catalog_id, len(changed))

    # Deletion: a parent of the extension goes.
    kept = [p for p in changed if p.name != "alpha"]
    kept[2].parent_names = ["Ärger", "Zeta"]
    sync_catalog(engine, catalog_id, snapshot(list(kept), info=catalog_info()))
    assert_fresh(engine, catalog_id, len(kept))


def test_postgresql_renders_items_in_the_database(pg_url: str) -> None:
    """No item or `extensions` text makes a round trip through Python on PostgreSQL (the
    executemany UPDATE of every item was 3.5 s of a 21 s Spack import), first import or
    refresh; nor is a row updated after its INSERT (each UPDATE wrote every row again and
    checked its foreign keys again)."""
    from syncd.db.engine import make_engine

    engine = make_engine(pg_url)
    many: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, executemany: bool) -> None:
        rewrite = "UPDATE package_read_model" in " ".join(statement.split())
        if (executemany and "package_read_model" in statement) or rewrite:
            many.append(statement)

    catalog_id = _catalog(engine)
    sync_catalog(engine, catalog_id, snapshot(_packages(), info=catalog_info()))
    changed = _packages()
    changed[0].description = "changed"
    sync_catalog(engine, catalog_id, snapshot(changed, info=catalog_info()))
    assert many == []
    assert_fresh(engine, catalog_id, len(changed))
    engine.dispose()
