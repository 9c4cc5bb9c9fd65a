"""The sync engine on SQLite and PostgreSQL: import, no-op refresh, refresh with changes,
failure midway."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from syncd.db.tables import Catalog, Package, PackageParent, Target, Version
from syncd.domain import SyncStats
from syncd.errors import PermanentError, UnknownCatalogError
from syncd.sync import sync_catalog
from tests.support.records import (
    catalog_info,
    failing_after,
    package,
    small_packages,
    small_snapshot,
    snapshot,
    synthetic_packages,
    target,
    version,
)


def make_catalog(engine: Engine, name: str = "Test", version: str = "1") -> int:
    with engine.begin() as conn:
        result = conn.execute(insert(Catalog).values(name=name, version=version, catalog_type="x"))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def counts(stats: SyncStats) -> dict[str, tuple[int, int, int, int]]:
    return {
        kind: (v["created"], v["updated"], v["deleted"], v["unchanged"])
        for kind, v in stats.as_dict().items()
    }


def rows_by_key(engine: Engine, catalog_id: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every row of the catalog keyed by identity, with uuid/created/modified."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    with engine.connect() as conn:
        pkgs = {
            r.id: r for r in conn.execute(select(Package).where(Package.catalog_id == catalog_id))
        }
        vers = {
            r.id: r for r in conn.execute(select(Version).where(Version.catalog_id == catalog_id))
        }
        for p in pkgs.values():
            out[("package", p.name)] = {"uuid": p.uuid, "created": p.created, "m": p.modified}
        for v in vers.values():
            key = ("version", pkgs[v.package_id].name, v.version, v.module_version)
            out[key] = {"uuid": v.uuid, "created": v.created, "m": v.modified}
        for t in conn.execute(select(Target).where(Target.catalog_id == catalog_id)):
            v = vers[t.version_id]
            tkey = ("target", pkgs[v.package_id].name, v.version, t.target_name, t.target_subtype)
            out[tkey] = {"uuid": t.uuid, "created": t.created, "m": t.modified}
        for link in conn.execute(
            select(PackageParent).where(PackageParent.catalog_id == catalog_id)
        ):
            out[("link", pkgs[link.package_id].name, pkgs[link.parent_id].name)] = {}
    return out


def catalog_row(engine: Engine, catalog_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(Catalog.__table__).where(Catalog.__table__.c.id == catalog_id)
        ).one()


def package_rows(engine: Engine, catalog_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            r.name: r for r in conn.execute(select(Package).where(Package.catalog_id == catalog_id))
        }


def versions_of(engine: Engine, catalog_id: int, name: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(Version.version)
                .join(Package, Package.id == Version.package_id)
                .where(Package.catalog_id == catalog_id, Package.name == name)
                .order_by(Version.sort_index)
            )
        )


def test_import_writes_everything(engine: Engine) -> None:
    cid = make_catalog(engine)
    info = catalog_info(description="first", source_url="file:///x", metadata={"k": 1})
    stats = sync_catalog(engine, cid, small_snapshot(info=info, validators={"u": {"etag": "a"}}))

    assert counts(stats) == {
        "packages": (3, 0, 0, 0),
        "versions": (5, 0, 0, 0),
        "targets": (7, 0, 0, 0),
        "parent_links": (2, 0, 0, 0),  # "no-such-parent" is ignored
    }
    cat = catalog_row(engine, cid)
    assert (cat.package_count, cat.version_count, cat.target_count) == (3, 5, 7)
    assert cat.description == "first" and cat.source_url == "file:///x"
    assert cat.metadata == {"k": 1} and cat.upstream_validators == {"u": {"etag": "a"}}
    assert len(cat.content_hash) == 32
    assert cat.last_update_attempt is None and cat.update_errors == ""

    pkgs = package_rows(engine, cid)
    assert {n: (p.version_count, p.extension_count) for n, p in pkgs.items()} == {
        "gcc": (2, 1),
        "python": (2, 1),
        "numpy": (1, 0),
    }
    assert pkgs["gcc"].licenses == ["GPL-3.0"] and pkgs["numpy"].is_extension is True
    assert versions_of(engine, cid, "gcc") == ["13.2", "12.3"]  # newest first
    with engine.connect() as conn:
        v312 = conn.execute(select(Version).where(Version.version == "3.12")).one()
        assert v312.dependencies == ["gcc"] and str(v312.release_date) == "2023-10-02"
        gpus = conn.scalars(
            select(Target.gpu_architectures).where(Target.version_id == v312.id)
        ).all()
        assert sorted(map(tuple, gpus)) == [(), ("nvidia/cc80",)]


def test_refresh_with_identical_data_writes_nothing(engine: Engine) -> None:
    cid = make_catalog(engine)
    sync_catalog(engine, cid, small_snapshot(validators={"etag": "1"}))
    before_rows = rows_by_key(engine, cid)
    before_catalog = catalog_row(engine, cid)

    stats = sync_catalog(engine, cid, small_snapshot(validators={"etag": "1"}))

    assert stats.rows_written == 0
    assert counts(stats) == {
        "packages": (0, 0, 0, 3),
        "versions": (0, 0, 0, 5),
        "targets": (0, 0, 0, 7),
        "parent_links": (0, 0, 0, 2),
    }
    # Not a single row rewritten: uuids, created and modified stamps are all as before.
    assert rows_by_key(engine, cid) == before_rows
    assert catalog_row(engine, cid).modified == before_catalog.modified


def changed_packages() -> list[Any]:
    """small_packages() with edits of every kind (see the expected counts in the test)."""
    return [
        package(
            "gcc",
            version("14.1", target("x86_64/zen4")),  # new version on top: 12.3/13.2 shift
            version("13.2", target("x86_64/zen2"), target("x86_64/zen3")),
            version("12.3", target("x86_64/zen2")),
            description="GNU Compiler Collection",  # changed
            homepage="https://gcc.gnu.org",
            licenses=["GPL-3.0"],
        ),
        package(
            "python",
            version(
                "3.12",
                target("x86_64/zen2", gpu_architectures=["nvidia/cc90"]),  # changed
                # aarch64/neoverse_v1 vanished
                target("x86_64/zen4"),  # new
                release_date=date(2023, 10, 2),
                dependencies=["gcc"],
            ),
            # 3.11 vanished, with its target
            description="Python",
        ),
        package(
            "numpy",
            version("1.26", target("x86_64/zen2")),
            is_extension=True,
            parent_names=["python"],  # link to gcc vanished
        ),
        package("scipy", version("1.11"), is_extension=True, parent_names=["python"]),
    ]


def test_refresh_with_changes_counts_exactly(engine: Engine) -> None:
    cid = make_catalog(engine)
    sync_catalog(engine, cid, small_snapshot())
    before = rows_by_key(engine, cid)

    stats = sync_catalog(engine, cid, snapshot(changed_packages()))

    assert counts(stats) == {
        # gcc: description, version_count 2->3, extension_count 1->0; python:
        # version_count 2->1, extension_count 1->2 (scipy joins); numpy unchanged; scipy new.
        "packages": (1, 2, 0, 1),
        # gcc 14.1 new; 13.2 and 12.3 moved down (sort_index); python 3.11 gone; 3.12 and
        # numpy 1.26 unchanged; scipy 1.11 new.
        "versions": (2, 2, 1, 2),
        # gcc 14.1/zen4 and python 3.12/zen4 new; 3.12/zen2 changed; neoverse_v1 and
        # 3.11/zen2 gone; gcc's three and numpy's one unchanged.
        "targets": (2, 1, 2, 4),
        # scipy->python new; numpy->gcc gone; numpy->python unchanged.
        "parent_links": (1, 0, 1, 1),
    }
    after = rows_by_key(engine, cid)
    for key in before.keys() & after.keys():
        if key in {("package", "numpy"), ("version", "numpy", "1.26", "")} or key[0] == "link":
            assert after[key] == before[key], key
        # every surviving row keeps its identity even when updated
        assert after[key].get("uuid") == before[key].get("uuid"), key
        assert after[key].get("created") == before[key].get("created"), key
    assert after[("version", "gcc", "13.2", "")]["m"] != before[("version", "gcc", "13.2", "")]["m"]
    assert versions_of(engine, cid, "gcc") == ["14.1", "13.2", "12.3"]
    pkgs = package_rows(engine, cid)
    assert {n: (p.version_count, p.extension_count) for n, p in pkgs.items()} == {
        "gcc": (3, 0),
        "python": (1, 2),
        "numpy": (1, 0),
        "scipy": (1, 0),
    }
    cat = catalog_row(engine, cid)
    assert (cat.package_count, cat.version_count, cat.target_count) == (4, 6, 7)

    # And back: the original snapshot restores the original contents.
    stats = sync_catalog(engine, cid, small_snapshot())
    assert counts(stats)["packages"] == (0, 2, 1, 1)
    assert set(rows_by_key(engine, cid)) == set(before)


def test_vanished_package_counts_its_rows(engine: Engine) -> None:
    cid = make_catalog(engine)
    sync_catalog(engine, cid, small_snapshot())
    stats = sync_catalog(engine, cid, snapshot(small_packages()[:2]))  # numpy vanishes
    assert counts(stats) == {
        "packages": (0, 2, 1, 0),  # gcc and python lose their extension
        "versions": (0, 0, 1, 4),
        "targets": (0, 0, 1, 6),
        "parent_links": (0, 0, 2, 0),
    }


def _link_rows(engine: Engine, catalog_id: int) -> int:
    with engine.connect() as conn:
        links = conn.scalars(select(PackageParent.package_id).where(
            PackageParent.catalog_id == catalog_id)).all()  # fmt: skip
    return len(links)


def test_vanished_parent_counts_its_links(engine: Engine) -> None:
    """A parent that disappears upstream takes its links with it: the stats count them as
    deleted, so created + unchanged is what the table holds afterwards."""
    cid = make_catalog(engine)
    sync_catalog(engine, cid, small_snapshot())
    stats = sync_catalog(engine, cid, snapshot(small_packages()[1:]))  # gcc vanishes
    links = stats.parent_links
    assert (links.created, links.updated, links.deleted, links.unchanged) == (0, 0, 1, 1)
    assert _link_rows(engine, cid) == links.created + links.unchanged == 1
    # The parent back again: its link is created anew, and counted so.
    stats = sync_catalog(engine, cid, small_snapshot())
    links = stats.parent_links
    assert (links.created, links.deleted, links.unchanged) == (1, 0, 1)
    assert _link_rows(engine, cid) == 2


def test_failure_midway_keeps_previous_catalog(engine: Engine) -> None:
    cid = make_catalog(engine)
    sync_catalog(engine, cid, snapshot(synthetic_packages(40), validators={"etag": "old"}))
    before = rows_by_key(engine, cid)
    before_catalog = catalog_row(engine, cid)

    changed = synthetic_packages(60, changed_fraction=0.5, seed=3)
    with pytest.raises(RuntimeError, match="stream broke"):
        sync_catalog(engine, cid, snapshot(failing_after(changed, 50), validators={"etag": "new"}))

    assert rows_by_key(engine, cid) == before
    after_catalog = catalog_row(engine, cid)
    assert after_catalog.upstream_validators == {"etag": "old"}
    assert after_catalog.package_count == before_catalog.package_count == 40
    # The engine is still usable and a later sync goes through.
    stats = sync_catalog(engine, cid, snapshot(synthetic_packages(40)))
    assert stats.rows_written == 0


def test_duplicates_and_too_long_values_are_left_out(engine: Engine) -> None:
    cid = make_catalog(engine)
    pkgs = [
        package("a", version("1"), version("1"), description="first"),
        package("a", version("2"), description="second"),
        package("b" * 300, version("1")),
        package("c", version("x" * 101), version("2", target("t"), target("t"))),
    ]
    stats = sync_catalog(engine, cid, snapshot(pkgs))
    assert counts(stats)["packages"] == (2, 0, 0, 0)
    assert counts(stats)["versions"] == (2, 0, 0, 0)
    assert counts(stats)["targets"] == (1, 0, 0, 0)
    assert stats.duplicates == 3  # package a, a's version 1, c's target t
    assert package_rows(engine, cid)["a"].description == "first"


def test_unknown_catalog(engine: Engine) -> None:
    with pytest.raises(UnknownCatalogError):
        sync_catalog(engine, 999, small_snapshot())


def test_two_catalogs_are_independent(engine: Engine) -> None:
    a = make_catalog(engine, version="a")
    b = make_catalog(engine, version="b")
    sync_catalog(engine, a, small_snapshot(info=catalog_info(version="a")))
    sync_catalog(engine, b, small_snapshot(info=catalog_info(version="b")))
    stats = sync_catalog(engine, a, snapshot(small_packages()[:1], info=catalog_info(version="a")))
    assert stats.packages.deleted == 2
    assert len(package_rows(engine, b)) == 3
    assert catalog_row(engine, b).package_count == 3


def test_synthetic_round_trip(engine: Engine) -> None:
    cid = make_catalog(engine)
    first = sync_catalog(engine, cid, snapshot(synthetic_packages(300)))
    assert first.packages.created == 300 and first.parent_links.created == 30
    again = sync_catalog(engine, cid, snapshot(synthetic_packages(300)))
    assert again.rows_written == 0
    edited = sync_catalog(engine, cid, snapshot(synthetic_packages(300, changed_fraction=0.1)))
    assert edited.versions.updated > 0
    assert edited.versions.created == edited.versions.deleted == 0
    assert edited.rows_written == edited.versions.updated


def test_a_rolling_upstream_relabels_the_catalog(engine: Engine) -> None:
    """Spack keeps only its latest data: a refresh that brings a newer label moves the row's
    version with it, so the label always describes the contents."""
    catalog_id = make_catalog(engine, version="2026.07.01")
    sync_catalog(
        engine, catalog_id, small_snapshot(info=catalog_info(rolling=True, version="2026.07.01"))
    )
    sync_catalog(
        engine, catalog_id, small_snapshot(info=catalog_info(rolling=True, version="2026.11.27"))
    )
    assert catalog_row(engine, catalog_id).version == "2026.11.27"


def test_relabel_onto_an_existing_catalog_is_refused(engine: Engine) -> None:
    old = make_catalog(engine, version="2026.07.01")
    make_catalog(engine, version="2026.11.27")
    sync_catalog(engine, old, small_snapshot(info=catalog_info(rolling=True, version="2026.07.01")))
    before = rows_by_key(engine, old)
    with pytest.raises(PermanentError, match=r"already holds 2026\.11\.27"):
        sync_catalog(
            engine, old, small_snapshot(info=catalog_info(rolling=True, version="2026.11.27"))
        )
    assert catalog_row(engine, old).version == "2026.07.01"
    assert rows_by_key(engine, old) == before


def _contents(engine: Engine, catalog_id: int) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every row of the catalog by identity, with every column but ids, uuids and stamps
    (foreign keys as names), so that two catalogs' contents compare equal."""
    skip = {"id", "uuid", "created", "modified", "catalog_id", "package_id", "version_id"}
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def own(row: Any) -> tuple[Any, ...]:
        return tuple(v for k, v in row._mapping.items() if k not in skip)

    with engine.connect() as conn:
        pkgs = {r.id: r for r in conn.execute(select(Package.__table__).where(
            Package.__table__.c.catalog_id == catalog_id))}  # fmt: skip
        vers = {r.id: r for r in conn.execute(select(Version.__table__).where(
            Version.__table__.c.catalog_id == catalog_id))}  # fmt: skip
        for p in pkgs.values():
            out[("package", p.name)] = own(p)
        for v in vers.values():
            out[("version", pkgs[v.package_id].name, v.version, v.module_version)] = own(v)
        for t in conn.execute(
            select(Target.__table__).where(Target.__table__.c.catalog_id == catalog_id)
        ):
            v = vers[t.version_id]
            key = ("target", pkgs[v.package_id].name, v.version, v.module_version)
            out[(*key, t.target_type, t.target_name, t.target_subtype)] = own(t)
        for link in conn.execute(
            select(PackageParent).where(PackageParent.catalog_id == catalog_id)
        ):
            out[("link", pkgs[link.package_id].name, pkgs[link.parent_id].name)] = ()
    return out


def _first_import_packages() -> list[Any]:
    """More rows than one batch, duplicates, values too long, and parent links to packages
    that come later in the stream, several times over, to themselves and to nowhere."""
    return [
        package("early", version("1"), parent_names=["late", "late", "early", "nowhere"]),
        package("early2", version("1"), parent_names=["late"]),
        *small_packages(),
        *synthetic_packages(700),
        package("a", version("1"), version("1"), description="first"),
        package("a", version("2"), description="second"),
        package("b" * 300, version("1")),
        package("c", version("x" * 101), version("2", target("t"), target("t"))),
        package("late", version("2"), version("1"), homepage="h" * 3000),
    ]


def test_first_import_writes_what_the_staged_path_writes(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL writes a first import straight into the tables: the same rows, hashes,
    counts, sort_index and parent links as the staged diff, and the same stats."""
    import syncd.sync.engine
    from syncd.db.engine import make_engine

    engine = make_engine(pg_url)
    direct_id = make_catalog(engine, version="direct")
    staged_id = make_catalog(engine, version="staged")
    info = catalog_info(description="d", source_url="file:///x", metadata={"k": 1})
    direct = sync_catalog(engine, direct_id, snapshot(_first_import_packages(), info=info))
    monkeypatch.setattr(syncd.sync.engine, "DIRECT_FIRST_IMPORT", False)
    staged = sync_catalog(engine, staged_id, snapshot(_first_import_packages(), info=info))
    monkeypatch.undo()

    assert direct.as_dict() == staged.as_dict()
    assert direct.packages.created > 700 and direct.targets.created > 2000
    assert direct.parent_links.created == staged.parent_links.created > 70
    direct_rows, staged_rows = _contents(engine, direct_id), _contents(engine, staged_id)
    assert direct_rows == staged_rows
    assert ("link", "early", "late") in direct_rows and ("link", "early2", "late") in direct_rows
    late = package_rows(engine, direct_id)["late"]
    assert (late.extension_count, late.version_count, late.homepage) == (2, 2, None)
    columns = ("package_count", "version_count", "target_count", "content_hash", "metadata")
    direct_cat, staged_cat = catalog_row(engine, direct_id), catalog_row(engine, staged_id)
    assert [getattr(direct_cat, c) for c in columns] == [getattr(staged_cat, c) for c in columns]
    with engine.connect() as conn:
        uuids = conn.scalars(select(Version.uuid).where(Version.catalog_id == direct_id)).all()
    assert len(set(uuids)) == len(uuids) and all(u.version == 4 for u in uuids)
    # Its hashes are the diff's: refreshing with the same data writes nothing.
    again = sync_catalog(engine, direct_id, snapshot(_first_import_packages(), info=info))
    assert again.rows_written == 0
    engine.dispose()


def test_failed_first_import_leaves_the_catalog_empty(engine: Engine) -> None:
    """A first import (on PostgreSQL written straight into the tables, batches already
    sent) that fails midway keeps nothing, and the stream's error propagates unchanged."""
    cid = make_catalog(engine)
    with pytest.raises(RuntimeError, match="stream broke"):
        sync_catalog(engine, cid, snapshot(failing_after(synthetic_packages(900), 800)))
    assert rows_by_key(engine, cid) == {}
    assert catalog_row(engine, cid).package_count == 0
    stats = sync_catalog(engine, cid, snapshot(synthetic_packages(40)))
    assert stats.packages.created == 40


def test_sqlite_statistics_are_refreshed_after_a_sync(sqlite_url: str) -> None:
    """SQLite has no autovacuum: without statistics, the cpu_family filter planned a scan of
    every matching target per package (minutes on EESSI + Spack)."""
    from sqlalchemy import text

    from syncd.db.engine import make_engine
    from syncd.db.migrate import upgrade

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        sync_catalog(engine, make_catalog(engine), small_snapshot())
        with engine.connect() as conn:
            analyzed = {row[0] for row in conn.execute(text("SELECT tbl FROM sqlite_stat1"))}
        assert {"package", "version", "target"} <= analyzed
    finally:
        engine.dispose()
