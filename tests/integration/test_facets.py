"""The derived filter data (package_facet, package_search; syncd/readmodel/facets.py) is
exactly what the stored rows say after every kind of write, on SQLite and PostgreSQL: a first
import, an incremental refresh, a no-op refresh, a deletion, a shrink the guard refuses, a
hand write (a package's deletion too), a catalog's deletion; and no derived row (the read
model's included) outlives its package (migration 0025's trigger, not foreign keys). The
expected values are computed here from the records sent, not from the database."""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, Table, delete, insert, select

from syncd.db.engine import make_engine
from syncd.db.migrate import upgrade
from syncd.db.tables import Catalog, Package, PackageFacet, PackageSearch, Target, Version
from syncd.domain import PackageRecord, TargetRecord, VersionRecord
from syncd.readmodel import facets
from syncd.service.hand_write_rows import Action, HandWrite, Kind
from syncd.service.hand_writes import hand_write
from syncd.sync import sync_catalog
from syncd.sync.shrink import ShrinkRefusedError
from tests.support.derived import DERIVED, assert_no_orphans, derived_packages
from tests.support.records import catalog_info, snapshot
from tests.support.services import postgres_database

CPU = "cpu_architecture"


def cpu(micro: str, *gpus: str) -> TargetRecord:
    return TargetRecord(CPU, micro.split("/")[0], micro, gpu_architectures=list(gpus))


def ver(number: str, *targets: TargetRecord, toolchain: str | None = None) -> VersionRecord:
    metadata = {"toolchain": {"name": toolchain, "version": "1"}} if toolchain else {}
    return VersionRecord(version=number, metadata=metadata, targets=list(targets))


def pkg(name: str, *versions: VersionRecord, description: str = "") -> PackageRecord:
    return PackageRecord(name=name, description=description, versions=list(versions))


def first_snapshot() -> list[PackageRecord]:
    return [
        pkg(
            "GROMACS",
            ver(
                "2024.1",
                cpu("x86_64/zen2", "nvidia/cc80"),
                cpu("aarch64/neoverse_v1"),
                toolchain="foss",
            ),
            ver("2023.3", cpu("x86_64/zen3"), toolchain="GCC"),
            description="Molecular DYNAMICS",
        ),
        pkg("numpy", ver("1.26", cpu("x86_64/zen2"), toolchain="gfbf")),
        # A non-CPU target: no CPU facet; an empty GPU list: no gpu facet.
        pkg("zlib", ver("1.3", TargetRecord("build_system", "x86_64", "cmake"))),
        pkg("empty"),
    ]


def expected(packages: list[PackageRecord]) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for p in packages:
        rows: set[tuple[str, str]] = set()
        for v in p.versions:
            if v.metadata.get("toolchain"):
                rows.add((facets.TOOLCHAIN, v.metadata["toolchain"]["name"]))
            for t in v.targets:
                if t.target_type == CPU:
                    rows |= {(facets.CPU_FAMILY, t.target_name)}
                    rows |= {(facets.CPU_MICROARCHITECTURE, t.target_subtype)}
                if t.gpu_architectures:
                    rows.add((facets.GPU, ""))
                rows |= {(facets.GPU_ARCH, arch) for arch in t.gpu_architectures}
        out[p.name] = rows
    return out


def expected_search(packages: list[PackageRecord]) -> dict[str, set[str]]:
    return {
        p.name: {p.name.lower(), p.description.lower(), *(v.version.lower() for v in p.versions)}
        for p in packages
    }


def stored(engine: Engine) -> tuple[dict[str, set[tuple[str, str]]], dict[str, set[str]]]:
    with engine.connect() as conn:
        names = dict(conn.execute(select(Package.id, Package.name)).all())
        found: dict[str, set[tuple[str, str]]] = {name: set() for name in names.values()}
        for kind, value, package_id in conn.execute(
            select(PackageFacet.kind, PackageFacet.value, PackageFacet.package_id)
        ):
            found[names[package_id]].add((kind, value))
        search = {
            names[package_id]: set(text.split(facets.SEPARATOR))
            for package_id, text in conn.execute(
                select(PackageSearch.package_id, PackageSearch.search_text)
            )
        }
    return found, search


def new_catalog(engine: Engine, version: str = "2023.06") -> int:
    values = {"uuid": uuid_module.uuid4(), "name": "EESSI", "catalog_type": "binary_runtime"}
    with engine.begin() as conn:
        return int(
            conn.execute(
                Catalog.__table__.insert().values(version=version, **values)
            ).inserted_primary_key[0]  # type: ignore[index]
        )


def assert_derived(
    engine: Engine, packages: list[PackageRecord], *, read_model: bool = True
) -> None:
    """`read_model`: its rows are expected too (not after a migration older than it)."""
    assert_no_orphans(engine)
    with engine.connect() as conn:
        ids = set(conn.execute(select(Package.id)).scalars())
    # Every package has its read model and search text (facets: those with values).
    held = derived_packages(engine)
    assert held["package_search"] == ids
    assert held["package_read_model"] == (ids if read_model else set())
    found, search = stored(engine)
    assert found == expected(packages)
    # The search text's parts: name, description and every version (an empty description
    # or no versions leave an empty part).
    assert {k: v - {""} for k, v in search.items()} == {
        k: v - {""} for k, v in expected_search(packages).items()
    }


def test_after_each_kind_of_sync(engine: Engine) -> None:
    catalog_id = new_catalog(engine)
    packages = first_snapshot()
    sync_catalog(engine, catalog_id, snapshot(first_snapshot(), info=catalog_info()))
    assert_derived(engine, packages)

    # Incremental: a GPU build and a toolchain go, a microarchitecture, a package and a
    # GPU architecture come.
    changed = first_snapshot()
    changed[0].versions[0] = ver("2024.1", cpu("x86_64/zen4"), toolchain="foss")
    changed[0].versions[1].targets.append(cpu("x86_64/zen4", "amd/gfx90a", "amd/gfx942"))
    changed[1].versions[0].metadata = {"toolchain": {"name": "foss", "version": "2023a"}}
    changed.append(pkg("R", ver("4.3", cpu("aarch64/a64fx"), toolchain="foss")))
    sync_catalog(engine, catalog_id, snapshot(list(changed), info=catalog_info()))
    assert_derived(engine, changed)

    # No-op: the same snapshot again.
    sync_catalog(engine, catalog_id, snapshot(list(changed), info=catalog_info()))
    assert_derived(engine, changed)

    # Deletion: packages upstream no longer lists lose their rows.
    kept = [p for p in changed if p.name in ("GROMACS", "R")]
    sync_catalog(engine, catalog_id, snapshot(list(kept), info=catalog_info()))
    assert_derived(engine, kept)

    # A shrink the guard refuses changes nothing, derived data included.
    with pytest.raises(ShrinkRefusedError):
        sync_catalog(
            engine, catalog_id, snapshot([kept[1]], info=catalog_info()), max_shrink_fraction=0.1
        )
    assert_derived(engine, kept)

    # The catalog's deletion takes its derived rows along.
    with engine.begin() as conn:
        conn.execute(delete(Catalog).where(Catalog.id == catalog_id))
    assert stored(engine) == ({}, {})
    assert derived_packages(engine) == {table: set() for table in DERIVED}
    assert_no_orphans(engine)


def test_two_catalogs_are_refreshed_apart(engine: Engine) -> None:
    first, second = new_catalog(engine), new_catalog(engine, "2025.06")
    sync_catalog(engine, first, snapshot(first_snapshot(), info=catalog_info()))
    other = [pkg("LAMMPS", ver("2Aug2023", cpu("x86_64/icelake"), toolchain="foss"))]
    sync_catalog(engine, second, snapshot(list(other), info=catalog_info("B")))
    sync_catalog(engine, first, snapshot(first_snapshot(), info=catalog_info()))
    assert_derived(engine, [*first_snapshot(), *other])


def test_after_hand_writes(engine: Engine) -> None:
    catalog_id = new_catalog(engine)
    sync_catalog(engine, catalog_id, snapshot(first_snapshot(), info=catalog_info()))
    with engine.connect() as conn:
        version_uuid = conn.scalar(
            select(Version.uuid).join(Package).where(Package.name == "numpy")
        )
    created = hand_write(
        engine,
        HandWrite(
            Kind.TARGET,
            Action.CREATE,
            values={
                "version": version_uuid,
                "target_type": CPU,
                "target_name": "riscv64",
                "target_subtype": "riscv64/generic",
                "gpu_architectures": ["amd/gfx90a"],
            },
        ),
    )
    packages = first_snapshot()
    packages[1].versions[0].targets.append(cpu("riscv64/generic", "amd/gfx90a"))
    assert_derived(engine, packages)

    hand_write(engine, HandWrite(Kind.TARGET, Action.DELETE, uuid=created))
    with engine.connect() as conn:
        zen2 = conn.scalar(
            select(Target.uuid)
            .join(Version)
            .join(Package)
            .where(Package.name == "numpy", Target.target_subtype == "x86_64/zen2")
        )
    hand_write(engine, HandWrite(Kind.TARGET, Action.DELETE, uuid=zen2))
    packages = first_snapshot()
    packages[1].versions[0].targets.clear()
    assert_derived(engine, packages)

    # A package deleted by hand takes its derived rows along, the others' stay.
    with engine.connect() as conn:
        gromacs = conn.scalar(select(Package.uuid).where(Package.name == "GROMACS"))
    hand_write(engine, HandWrite(Kind.PACKAGE, Action.DELETE, uuid=gromacs))
    assert_derived(engine, packages[1:])


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own (the shared ones are migrated to head)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        with postgres_database("syncd_mig14") as url:
            yield url


def _before_0015(table: Table) -> Table:
    """`table` without the package.metadata column that migration 0015 adds later."""
    columns = [c._copy() for c in table.columns if c.name != "metadata"]
    return Table(table.name, MetaData(), *columns)


def test_migration_fills_the_catalogs_already_stored(bare_url: str) -> None:
    upgrade(bare_url, "0012")
    engine = make_engine(bare_url)
    try:
        with engine.begin() as conn:
            catalog_id = conn.execute(
                insert(Catalog).values(
                    uuid=uuid_module.uuid4(), name="EESSI", version="1", catalog_type="x"
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            ids = {"uuid": uuid_module.uuid4(), "catalog_id": catalog_id}
            package_id = conn.execute(
                insert(_before_0015(Package.__table__)).values(
                    name="GROMACS", description="MD", **ids
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            ids["uuid"] = uuid_module.uuid4()
            version_id = conn.execute(
                insert(Version).values(
                    package_id=package_id,
                    version="2024.1",
                    metadata_={"toolchain": {"name": "foss", "version": "2023b"}},
                    **ids,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            ids["uuid"] = uuid_module.uuid4()
            conn.execute(
                insert(Target).values(
                    version_id=version_id,
                    target_type=CPU,
                    target_name="x86_64",
                    target_subtype="x86_64/zen2",
                    gpu_architectures=["nvidia/cc80"],
                    **ids,
                )
            )
        upgrade(bare_url)
        packages = [
            pkg("GROMACS", ver("2024.1", cpu("x86_64/zen2", "nvidia/cc80"), toolchain="foss"),
                description="MD")
        ]  # fmt: skip
        assert_derived(engine, packages, read_model=False)
    finally:
        engine.dispose()


def test_migration_0017_fills_the_gpu_architectures_already_stored(bare_url: str) -> None:
    upgrade(bare_url, "0015")
    engine = make_engine(bare_url)
    try:
        with engine.begin() as conn:
            catalog_id = conn.execute(
                insert(Catalog).values(
                    uuid=uuid_module.uuid4(), name="EESSI", version="1", catalog_type="x"
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            ids = {"uuid": uuid_module.uuid4(), "catalog_id": catalog_id}
            package_id = conn.execute(
                insert(Package).values(name="GROMACS", **ids)
            ).inserted_primary_key[0]  # type: ignore[index]
            ids["uuid"] = uuid_module.uuid4()
            version_id = conn.execute(
                insert(Version).values(package_id=package_id, version="2024.1", **ids)
            ).inserted_primary_key[0]  # type: ignore[index]
            gpu_lists = (["nvidia/cc80", "nvidia/cc90"], ["nvidia/cc80"], [])
            for micro, gpus in zip(("zen2", "zen3", "zen4"), gpu_lists, strict=True):
                ids["uuid"] = uuid_module.uuid4()
                conn.execute(
                    insert(Target).values(
                        version_id=version_id,
                        target_type=CPU,
                        target_name="x86_64",
                        target_subtype=f"x86_64/{micro}",
                        gpu_architectures=gpus,
                        **ids,
                    )
                )
        upgrade(bare_url)
        with engine.connect() as conn:
            rows = conn.execute(
                select(PackageFacet.value, PackageFacet.package_id).where(
                    PackageFacet.kind == facets.GPU_ARCH
                )
            ).all()
        assert sorted(rows) == [("nvidia/cc80", package_id), ("nvidia/cc90", package_id)]
    finally:
        engine.dispose()
