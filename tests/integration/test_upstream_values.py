"""Upstream values PostgreSQL would refuse, or that lose their text on the way: NUL in any text
or JSON field (stored with U+FFFD, named in update_errors), and versions given as JSON numbers
or null (kept as their source text, or left out and named). On SQLite and PostgreSQL; on
PostgreSQL the first import takes the direct path and the refresh the staged one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from adapters.fetch import Fetcher
from adapters.spack import SpackAdapter
from syncd import service
from syncd.config import Settings
from syncd.db.tables import Catalog, Package, Target, Version
from syncd.sync import sync_catalog
from tests.integration.test_sync import make_catalog
from tests.support import upstream_data
from tests.support.records import catalog_info, package, snapshot, target, version

FFFD = "\ufffd"


def _nul_packages() -> list[Any]:
    return [
        package(
            "tool",
            version(
                "1.0",
                target("x86\x00_64", location="/cvmfs/\x00x", metadata={"k": "v"}),
                metadata={"nested": [{"ke\x00y": "va\x00lue"}], "plain": 1},
                dependencies=["dep\x00"],
            ),
            description="a tool\x00 with a NUL",
            categories=["cat\x00"],
        ),
        package("clean", version("2.0", target("x86_64"))),
    ]


def test_nul_is_stored_as_fffd_and_named(engine: Engine) -> None:
    cid = make_catalog(engine)
    info = catalog_info(description="cat\x00alog", metadata={"a\x00": ["b\x00"]})
    stats = sync_catalog(engine, cid, snapshot(_nul_packages(), info=info))

    assert stats.packages.created == 2 and stats.versions.created == 2
    assert stats.targets.created == 2
    with engine.connect() as conn:
        tool = conn.execute(select(Package).where(Package.name == "tool")).one()
        ver = conn.execute(select(Version).where(Version.package_id == tool.id)).one()
        tgt = conn.execute(select(Target).where(Target.version_id == ver.id)).one()
        cat = conn.execute(select(Catalog).where(Catalog.id == cid)).one()
    assert tool.description == f"a tool{FFFD} with a NUL"
    assert tool.categories == [f"cat{FFFD}"]
    assert ver.metadata == {"nested": [{f"ke{FFFD}y": f"va{FFFD}lue"}], "plain": 1}
    assert ver.dependencies == [f"dep{FFFD}"]
    assert (tgt.target_name, tgt.location) == (f"x86{FFFD}_64", f"/cvmfs/{FFFD}x")
    assert cat.description == f"cat{FFFD}alog" and cat.metadata == {f"a{FFFD}": [f"b{FFFD}"]}

    assert stats.sanitised == 8
    [warning] = stats.warnings
    assert warning.startswith("8 upstream values held NUL characters, stored with U+FFFD")
    assert "package 'tool' description" in warning
    assert "package 'tool' version '1.0' dependencies" in warning
    assert "package 'tool' version '1.0' target ('cpu', 'x86\ufffd_64', '')" in warning
    assert warning.endswith("; and 3 more.")  # five named, whatever the count

    # The same data again (the staged path on both backends): the same hashes, nothing
    # written, and the warning stays true.
    again = sync_catalog(engine, cid, snapshot(_nul_packages(), info=info))
    assert again.rows_written == 0 and again.sanitised == 8


# --- end to end: the Spack adapter from a file, through the service ----------------------


def _spack_file(tmp_path: Path) -> Path:
    doc = upstream_data.spack_document(n_packages=4)
    pkg = doc["packages"]["pkg-001"]
    pkg["summary"] = "Synthetic\u0000 package"
    pkg["version"] = [
        {"version": "__TWO_TEN__", "downloads": ["https://example.org/a-2.10.tar.gz"]},
        {"version": 3, "downloads": ["https://example.org/a-3\u0000.tar.gz"]},
        {"version": None, "downloads": ["https://example.org/a-null.tar.gz"]},
        {"downloads": ["https://example.org/a-missing.tar.gz"]},
        {
            "version": "develop",
            "branch": "develop",
            "repositories": [{"url": "https://git.example/a", "ty\u0000pe": "git"}],
        },
    ]
    text = json.dumps(doc).replace('"__TWO_TEN__"', "2.10")
    path = tmp_path / "repology.json"
    path.write_text(text)
    return path


def test_spack_numbers_nulls_and_nul_end_to_end(engine: Engine, tmp_path: Path) -> None:
    source = _spack_file(tmp_path).as_uri()
    settings = Settings(allow_file_sources=True, fetch_retries=0)
    adapters: dict[str, Any] = {"Spack": SpackAdapter(settings)}
    result = service.import_catalog(
        engine, adapters, Fetcher(settings), name="Spack", source=source
    )

    assert result.changed and result.stats is not None
    with engine.connect() as conn:
        row = conn.execute(select(Catalog).where(Catalog.id == result.catalog_id)).one()
        pkg = conn.execute(
            select(Package).where(Package.catalog_id == row.id, Package.name == "pkg-001")
        ).one()
        versions = conn.scalars(
            select(Version.version).where(Version.package_id == pkg.id).order_by(Version.sort_index)
        ).all()
        everything = conn.scalars(select(Version.version)).all()
    assert versions == ["develop", "3", "2.10"]  # 2.10 is not 2.1; no "None"
    assert "None" not in everything
    assert pkg.description == f"Synthetic{FFFD} package"
    assert row.last_successful_update >= row.last_update_attempt  # a success...
    errors = row.update_errors  # ...that says what it could not store as it is
    assert errors.startswith("Updated, but not all upstream data could be stored as it is: ")
    assert "package 'pkg-001' description" in errors
    assert "package 'pkg-001' version '3' metadata" in errors
    assert "package 'pkg-001' version 'develop' metadata" in errors
    assert "2 upstream records were left out" in errors
    assert "package 'pkg-001': a version entry: version null upstream is not a version" in errors
    assert "package 'pkg-001': a version entry: no version upstream" in errors

    # Upstream fixed: the next update clears update_errors.
    clean = upstream_data.spack_document(n_packages=4)
    Path(source.removeprefix("file://")).write_text(json.dumps(clean))
    service.update_catalog(engine, adapters, Fetcher(settings), catalog_uuid=result.catalog_uuid)
    with engine.connect() as conn:
        assert conn.scalar(select(Catalog.update_errors)) == ""


def test_a_clean_import_leaves_update_errors_empty(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "repology.json"
    path.write_bytes(upstream_data.dumps(upstream_data.spack_document(n_packages=4)))
    settings = dataclasses.replace(Settings(), allow_file_sources=True, fetch_retries=0)
    result = service.import_catalog(
        engine, {"Spack": SpackAdapter(settings)}, Fetcher(settings), name="Spack",
        source=path.as_uri(),
    )  # fmt: skip
    assert result.stats is not None and result.stats.warnings == []
    with engine.connect() as conn:
        assert conn.scalar(select(Catalog.update_errors)) == ""
