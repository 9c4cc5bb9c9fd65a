"""API fixtures: an app on a migrated database (SQLite and PostgreSQL, via `engine`), a stub
broker, fake adapters, tokens, and a small catalog set inserted directly with SQLAlchemy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.tables import Catalog, Package, PackageParent, Target, Version
from syncd.domain import CatalogType
from syncd.readmodel.facets import refresh_facets
from syncd.tokens import create_token

QUEUE = "syncd-api-test"
CATALOGS = "/api/marketplace-software-catalogs/"
PACKAGES = "/api/marketplace-software-packages/"
VERSIONS = "/api/marketplace-software-versions/"
TARGETS = "/api/marketplace-software-targets/"


@dataclass
class FakeAdapter:
    """An adapter whose upstream is a list of versions (latest first) or a failure."""

    name: str
    catalog_type: CatalogType
    versions: list[str] = field(default_factory=list)
    fail: bool = False
    calls: int = 0

    def default_source(self) -> str:
        return f"https://upstream.example/{self.name}"

    def discover(self, fetcher: Any, source: str | None = None) -> list[str]:
        self.calls += 1
        if self.fail:
            raise ConnectionError(f"{self.name} upstream unreachable")
        return list(self.versions)

    def fetch_snapshot(self, fetcher: Any, **_kwargs: Any) -> None:
        raise AssertionError("the API never fetches snapshots")


@pytest.fixture
def settings(db_url: str) -> Settings:
    # No response cache: tests write with SQL and read through the API at once
    # (test_cache.py turns it on).
    return Settings(
        database_url=db_url, queue_name=QUEUE, discover_cache_seconds=300, api_cache_seconds=0
    )


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    stub = StubBroker()
    stub.declare_queue(QUEUE)
    yield stub
    stub.close()


@pytest.fixture
def adapters() -> dict[str, FakeAdapter]:
    return {
        "EESSI": FakeAdapter("EESSI", CatalogType.BINARY_RUNTIME, ["2025.06", "2023.06"]),
        "Spack": FakeAdapter("Spack", CatalogType.SOURCE_PACKAGE, ["2026.07.01"]),
    }


@pytest.fixture
def app(
    settings: Settings, engine: Engine, broker: StubBroker, adapters: dict[str, FakeAdapter]
) -> FastAPI:
    return create_app(settings, engine=engine, broker=broker, adapters=adapters, fetcher=object())


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _token(factory: sessionmaker[Session], *, staff: bool) -> str:
    with factory() as session:
        _, key = create_token(session, name="test", is_staff=staff)
        session.commit()
    return key


@pytest.fixture
def staff(session_factory: sessionmaker[Session]) -> dict[str, str]:
    return {"Authorization": f"Token {_token(session_factory, staff=True)}"}


@pytest.fixture
def user(session_factory: sessionmaker[Session]) -> dict[str, str]:
    return {"Authorization": f"Token {_token(session_factory, staff=False)}"}


@dataclass
class Sample:
    eessi: uuid.UUID
    spack: uuid.UUID
    packages: dict[str, uuid.UUID]
    versions: dict[str, uuid.UUID]
    targets: dict[str, uuid.UUID]


T0 = datetime(2026, 1, 1, tzinfo=UTC)

ARCHITECTURES = {
    "2023.06": {
        "aarch64/neoverse_v1": "aarch64/neoverse_v1",
        "x86_64/amd/zen2": "x86_64/amd/zen2",
        "x86_64/intel/haswell": "x86_64/intel/haswell",
        "x86_64/generic": "x86_64/generic",
    },
    "2025.06": {"x86_64/amd/zen4": "x86_64/amd/zen4"},
}


def _cpu(arch: str, gpus: list[str] | None = None) -> dict[str, Any]:
    family, _, micro = arch.partition("/")
    return {
        "target_type": "cpu_architecture",
        "target_name": family,
        "target_subtype": micro,
        "location": f"/cvmfs/software.eessi.io/versions/2023.06/software/linux/{arch}",
        "metadata_": {"full_arch": arch},
        "gpu_architectures": gpus or [],
    }


# package -> (catalog, fields, [(version, sort_index, toolchain, release_date, [targets])])
PACKAGE_DATA: list[tuple[str, str, dict[str, Any], list[tuple[Any, ...]]]] = [
    (
        "python",
        "eessi",
        {"description": "The Python language", "categories": ["lang"], "licenses": ["PSF"]},
        [
            ("3.11.3", 0, ("GCCcore", "12.3.0"), None, ["x86_64/amd/zen2", "aarch64/neoverse_v1"]),
            ("3.10.8", 1, ("GCCcore", "12.2.0"), None, ["x86_64/amd/zen2"]),
        ],
    ),
    (
        "numpy",
        "eessi",
        {"description": "Arrays for Python", "categories": ["python"], "is_extension": True},
        [("1.26.4", 0, ("foss", "2023a"), None, ["x86_64/intel/haswell"])],
    ),
    (
        "cuda-samples",
        "eessi",
        {"description": "CUDA examples", "categories": ["gpu"], "licenses": ["BSD-3-Clause"]},
        [
            (
                "12.1",
                0,
                ("GCC", "12.3.0"),
                None,
                [("x86_64/amd/zen2", ["nvidia/cc80", "nvidia/cc90"])],
            )
        ],
    ),
    (
        "gromacs",
        "spack",
        {
            "description": "Molecular dynamics",
            "categories": ["chemistry"],
            "licenses": ["LGPL-2.1"],
        },
        [
            ("2024.1", 0, None, date(2024, 2, 1), []),
            ("2023.3", 1, None, date(2023, 10, 1), []),
        ],
    ),
]


@pytest.fixture
def sample(session_factory: sessionmaker[Session]) -> Sample:
    """Two catalogs (EESSI 2023.06, Spack 2026.07.01), four packages, six versions."""
    with session_factory() as session:
        eessi = Catalog(
            name="EESSI",
            version="2023.06",
            catalog_type="binary_runtime",
            description="European Environment for Scientific Software Installations",
            source_url="https://www.eessi.io/api_data/data/",
            metadata_={"architectures_map": ARCHITECTURES},
            created=T0,
            modified=T0 + timedelta(days=3),
            last_successful_update=T0 + timedelta(days=3),
        )
        spack = Catalog(
            name="Spack",
            version="2026.07.01",
            catalog_type="source_package",
            description="Spack packages",
            auto_update_enabled=False,
            metadata_={},
            created=T0 + timedelta(days=1),
            modified=T0 + timedelta(days=1),
        )
        session.add_all([eessi, spack])
        session.flush()
        catalogs = {"eessi": eessi, "spack": spack}
        packages: dict[str, Package] = {}
        versions: dict[str, Version] = {}
        targets: dict[str, Target] = {}
        for index, (name, which, fields, version_rows) in enumerate(PACKAGE_DATA):
            catalog = catalogs[which]
            package = Package(
                catalog_id=catalog.id,
                name=name,
                created=T0 + timedelta(hours=index),
                modified=T0 + timedelta(hours=10 - index),
                version_count=len(version_rows),
                **fields,
            )
            session.add(package)
            session.flush()
            packages[name] = package
            for text, sort_index, toolchain, released, arches in version_rows:
                metadata: dict[str, Any] = {}
                if toolchain:
                    metadata = {
                        "toolchain": {"name": toolchain[0], "version": toolchain[1]},
                        "module": {"full_module_name": f"{name}/{text}", "module_version": text},
                        "required_modules": [{"module_name": "EESSI", "module_version": "2023.06"}],
                    }
                version = Version(
                    package_id=package.id,
                    catalog_id=catalog.id,
                    version=text,
                    module_version=text,
                    sort_index=sort_index,
                    release_date=released,
                    dependencies=["zlib"],
                    metadata_=metadata,
                    created=T0 + timedelta(hours=index, minutes=sort_index),
                )
                session.add(version)
                session.flush()
                versions[f"{name}/{text}"] = version
                for arch in arches:
                    arch_name, gpus = arch if isinstance(arch, tuple) else (arch, [])
                    target = Target(
                        version_id=version.id, catalog_id=catalog.id, **_cpu(arch_name, gpus)
                    )
                    session.add(target)
                    session.flush()
                    targets[f"{name}/{text}/{arch_name}"] = target
        # Spack's gromacs carries a non-CPU target, which the cpu_* filters must not match.
        build = Target(
            version_id=versions["gromacs/2024.1"].id,
            catalog_id=spack.id,
            target_type="build_system",
            target_name="x86_64",
            target_subtype="cmake",
            metadata_={},
            gpu_architectures=[],
        )
        session.add(build)
        session.flush()
        targets["gromacs/2024.1/build"] = build
        session.add(
            PackageParent(
                package_id=packages["numpy"].id,
                parent_id=packages["python"].id,
                catalog_id=eessi.id,
            )
        )
        packages["python"].extension_count = 1
        # The stored counts as the sync keeps them (the unfiltered lists read them), written
        # without touching `modified`, which the ordering tests rely on.
        for catalog in catalogs.values():
            session.execute(
                update(Catalog)
                .where(Catalog.id == catalog.id)
                .values(
                    package_count=sum(p.catalog_id == catalog.id for p in packages.values()),
                    version_count=sum(v.catalog_id == catalog.id for v in versions.values()),
                    target_count=sum(t.catalog_id == catalog.id for t in targets.values()),
                    modified=Catalog.modified,
                )
            )
        # And the derived filter data, as every writer keeps it (syncd/readmodel/facets.py).
        refresh_facets(session.connection(), None, None)
        session.commit()
        return Sample(
            eessi=eessi.uuid,
            spack=spack.uuid,
            packages={k: v.uuid for k, v in packages.items()},
            versions={k: v.uuid for k, v in versions.items()},
            targets={k: v.uuid for k, v in targets.items()},
        )


def names(response: Any, key: str = "name") -> list[Any]:
    assert response.status_code == 200, response.text
    return [item[key] for item in response.json()]
