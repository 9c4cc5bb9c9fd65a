"""EESSI data of both schema epochs through the adapter and the sync, on SQLite and PostgreSQL:
the same rows, one per toolchain build, module objects stored, and a collapse of two builds
counted in the stats and logged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select
from structlog.testing import capture_logs

from syncd.db.tables import Catalog, Package, Target, Version
from syncd.sync import sync_catalog
from tests.support import upstream_data
from tests.support.eessi_old_format import documents, snapshot


def make_catalog(engine: Engine, version: str) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(Catalog).values(name="EESSI", version=version, catalog_type="binary_runtime")
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def stored(engine: Engine, catalog_id: int) -> dict[tuple[str, str, str], Any]:
    """(package, version, module_version) -> what the version row and its targets hold, but
    metadata["extensions"], which the older format does not give."""
    with engine.connect() as conn:
        names = {
            r.id: r.name
            for r in conn.execute(select(Package).where(Package.catalog_id == catalog_id))
        }
        targets: dict[int, list[tuple[str, str, str]]] = {}
        for t in conn.execute(select(Target).where(Target.catalog_id == catalog_id)):
            targets.setdefault(t.version_id, []).append(
                (t.target_name, t.target_subtype, t.location)
            )
        out: dict[tuple[str, str, str], Any] = {}
        for v in conn.execute(select(Version).where(Version.catalog_id == catalog_id)):
            meta = {k: x for k, x in v.metadata.items() if k != "extensions"}
            key = (names[v.package_id], v.version, v.module_version)
            out[key] = (v.dependencies, meta, sorted(targets.get(v.id, [])))
        return out


def test_both_epochs_sync_to_the_same_rows(engine: Engine) -> None:
    doc = upstream_data.eessi_document_with_atk()
    rows = {}
    for old in (False, True):
        cid = make_catalog(engine, "2023.06-old" if old else "2023.06")
        stats = sync_catalog(engine, cid, snapshot(documents(doc, old=old), "2023.06"))
        assert stats.duplicates == 0
        rows[old] = stored(engine, cid)
    assert rows[True] == rows[False]
    atk = {k: v for k, v in rows[True].items() if k[0] == "ATK"}
    assert sorted(atk) == [
        ("ATK", "2.38.0", "2.38.0-GCCcore-12.2.0"),
        ("ATK", "2.38.0", "2.38.0-GCCcore-12.3.0"),
        ("ATK", "2.38.0", "2.38.0-GCCcore-13.2.0"),
    ]
    dependencies, meta, _targets = atk[("ATK", "2.38.0", "2.38.0-GCCcore-12.2.0")]
    assert dependencies == [
        {"full_module_name": "EESSI/2023.06", "module_name": "EESSI", "module_version": "2023.06"},
        {
            "full_module_name": "GCCcore/12.2.0",
            "module_name": "GCCcore",
            "module_version": "12.2.0",
        },
    ]
    assert meta["module"]["full_module_name"] == "ATK/2.38.0-GCCcore-12.2.0"
    assert meta["required_modules"][2] == meta["module"]
    ext = rows[True][("numpy-lite", "1.0", "1.0.0-GCCcore-12.3.0")]
    assert ext[1]["parent_module"] == "Tool0/1.0.0-GCCcore-12.3.0"


def test_two_builds_under_one_key_are_counted_and_logged(engine: Engine) -> None:
    doc = upstream_data.eessi_one_key_two_builds_document()
    cid = make_catalog(engine, "2023.06")
    with capture_logs() as logs:
        stats = sync_catalog(engine, cid, snapshot(documents(doc, old=True), "2023.06"))
    assert stats.duplicates == 1
    assert stats.versions.created == 3  # ParentA, ParentB, and one textual
    warnings = [e for e in logs if e["event"] == "duplicate_records"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["count"] == 1
    assert warnings[0]["first"] == ["package 'textual' version ('0.61.0', '1.0.0-GCCcore-12.3.0')"]
    kept = stored(engine, cid)[("textual", "0.61.0", "1.0.0-GCCcore-12.3.0")]
    assert kept[1]["parent_module"] == "ParentA/1.0.0-GCCcore-12.3.0"  # the first one wins
