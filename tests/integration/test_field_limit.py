"""SYNCD_MAX_FIELD_CHARS in the sync, for any adapter's records: every text value the sync
stores without a column length of its own is cut to the limit and named in the warnings,
on SQLite and PostgreSQL, on the direct first import and on the staged refresh alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from syncd.db.tables import Catalog, Package, Target, Version
from syncd.sync import sync_catalog
from tests.integration.test_sync import make_catalog
from tests.support.records import catalog_info, package, snapshot, target, version

LIMIT = 10
LONG = "abcdefghij" * 3  # 30 characters
CUT = LONG[:LIMIT]


def _packages() -> list[Any]:
    return [
        package(
            "tool",
            version(
                "1.0",
                target(
                    "x86_64",
                    metadata={"path": LONG, "short": "ok"},
                    gpu_architectures=[LONG],
                ),
                metadata={"nested": [{LONG: [LONG, 1]}], "plain": 1},
                dependencies=[LONG, "dep"],
            ),
            description=LONG,
            categories=[LONG, "cat"],
        ),
        package("fits", version("2.0", target("x86_64")), description="short"),
    ]


def _info() -> Any:
    return catalog_info(description=LONG, metadata={"map": {LONG: LONG}})


def test_long_values_are_cut_and_named(engine: Engine) -> None:
    cid = make_catalog(engine)
    stats = sync_catalog(engine, cid, snapshot(_packages(), info=_info()), max_field_chars=LIMIT)

    with engine.connect() as conn:
        tool = conn.execute(select(Package).where(Package.name == "tool")).one()
        fits = conn.execute(select(Package).where(Package.name == "fits")).one()
        ver = conn.execute(select(Version).where(Version.package_id == tool.id)).one()
        tgt = conn.execute(select(Target).where(Target.version_id == ver.id)).one()
        cat = conn.execute(select(Catalog).where(Catalog.id == cid)).one()
    assert (tool.description, tool.categories) == (CUT, [CUT, "cat"])
    assert fits.description == "short"
    assert ver.metadata == {"nested": [{CUT: [CUT, 1]}], "plain": 1}
    assert ver.dependencies == [CUT, "dep"]
    assert tgt.metadata == {"path": CUT, "short": "ok"} and tgt.gpu_architectures == [CUT]
    assert cat.description == CUT and cat.metadata == {"map": {CUT: CUT}}

    assert stats.cut == 8
    [warning] = stats.warnings
    assert warning.startswith(
        "8 upstream values were longer than 10 characters (SYNCD_MAX_FIELD_CHARS), stored cut "
        "to that length: "
    )
    assert warning.endswith("; and 3 more.")  # five named, whatever the count
    named = warning.split(": ", 1)[1].removesuffix("; and 3 more.").split("; ")
    where = "package 'tool' version '1.0'"
    gpu = f"{where} target ('cpu', 'x86_64', '')"
    every = {
        "package 'tool' description",
        "package 'tool' categories",
        f"{where} dependencies",
        f"{where} metadata",
        f"{gpu} metadata",
        f"{gpu} gpu_architectures",
        "the catalog's description",
        "the catalog's metadata",
    }
    assert len(named) == 5 and set(named) <= every, named

    # The same data again (the staged path on both backends): the same hashes, nothing
    # written, and the warning stays true.
    again = sync_catalog(engine, cid, snapshot(_packages(), info=_info()), max_field_chars=LIMIT)
    assert again.rows_written == 0 and again.cut == 8


def test_values_at_the_limit_are_kept_whole(engine: Engine) -> None:
    cid = make_catalog(engine)
    exact = package("p", version("1", metadata={"k": CUT}), description=CUT)
    info = catalog_info(description=CUT)
    stats = sync_catalog(engine, cid, snapshot([exact], info=info), max_field_chars=LIMIT)
    assert stats.cut == 0 and stats.warnings == []
