"""The schema built by the migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from syncd.db.engine import make_engine
from syncd.db.migrate import current_revision, upgrade
from syncd.db.tables import Catalog, Package, PackageParent, Target, Version
from tests.support.services import postgres_database

EXPECTED_TABLES = {
    "alembic_version",
    "api_token",
    "api_token_offering",
    "catalog",
    "command_outcome",
    "event_outbox",
    "package_facet",
    "package_search",
    "message_delivery",
    "offering_catalog",
    "package",
    "package_parent",
    "package_read_model",
    "pending_command",
    "scheduler_tick",
    "sync_change",
    "sync_run",
    "target",
    "version",
}


def _schema_fingerprint(engine: Engine) -> dict[str, object]:
    insp = inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"])) for c in insp.get_columns(table)],
            sorted(i["name"] or "" for i in insp.get_indexes(table)),
            sorted(u["name"] or "" for u in insp.get_unique_constraints(table)),
        )
        for table in sorted(insp.get_table_names())
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_builds_every_table_and_is_idempotent(backend: str, tmp_path) -> None:
    def check(url: str) -> None:
        upgrade(url)
        engine = make_engine(url)
        try:
            assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES
            before = _schema_fingerprint(engine)
            revision = current_revision(engine)
            assert revision is not None
        finally:
            engine.dispose()
        upgrade(url)
        engine = make_engine(url)
        try:
            assert _schema_fingerprint(engine) == before
            assert current_revision(engine) == revision
        finally:
            engine.dispose()

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    else:
        with postgres_database("syncd_migrate") as url:
            check(url)


def _catalog(session: Session, name: str = "EESSI", version: str = "2023.06") -> Catalog:
    row = Catalog(name=name, version=version, catalog_type="binary_runtime")
    session.add(row)
    session.flush()
    return row


def test_catalog_defaults(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        row = _catalog(session)
        session.commit()
        fetched = session.execute(select(Catalog)).scalar_one()
        assert fetched.auto_update_enabled is True
        assert fetched.update_errors == ""
        assert fetched.last_update_attempt is None
        assert fetched.last_successful_update is None
        assert fetched.metadata_ == {}
        assert isinstance(fetched.uuid, uuid.UUID)
        assert fetched.id == row.id


def test_catalog_name_version_type_is_unique(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        _catalog(session)
        session.commit()
        session.add(Catalog(name="EESSI", version="2023.06", catalog_type="binary_runtime"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        # Another version, or another type, is a different catalog.
        session.add(Catalog(name="EESSI", version="2025.06", catalog_type="binary_runtime"))
        session.add(Catalog(name="EESSI", version="2023.06", catalog_type="source_package"))
        session.commit()


def test_package_name_unique_per_catalog(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        first, second = _catalog(session), _catalog(session, version="2025.06")
        session.add(Package(catalog_id=first.id, name="GROMACS"))
        session.add(Package(catalog_id=second.id, name="GROMACS"))
        session.commit()
        session.add(Package(catalog_id=first.id, name="GROMACS"))
        with pytest.raises(IntegrityError):
            session.commit()


def test_version_and_target_uniqueness(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        cat = _catalog(session)
        pkg = Package(catalog_id=cat.id, name="GROMACS")
        session.add(pkg)
        session.flush()
        v1 = Version(package_id=pkg.id, catalog_id=cat.id, version="2024.1", module_version="a")
        v2 = Version(package_id=pkg.id, catalog_id=cat.id, version="2024.1", module_version="b")
        session.add_all([v1, v2])
        session.flush()
        session.add(Target(version_id=v1.id, catalog_id=cat.id, target_type="cpu", target_name="x"))
        session.commit()
        session.add(
            Version(package_id=pkg.id, catalog_id=cat.id, version="2024.1", module_version="a")
        )
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(Target(version_id=v1.id, catalog_id=cat.id, target_type="cpu", target_name="x"))
        with pytest.raises(IntegrityError):
            session.commit()


def test_deleting_a_catalog_cascades(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        cat = _catalog(session)
        parent = Package(catalog_id=cat.id, name="Python")
        ext = Package(catalog_id=cat.id, name="numpy", is_extension=True)
        session.add_all([parent, ext])
        session.flush()
        session.add(PackageParent(package_id=ext.id, parent_id=parent.id, catalog_id=cat.id))
        ver = Version(package_id=parent.id, catalog_id=cat.id, version="3.11")
        session.add(ver)
        session.flush()
        session.add(Target(version_id=ver.id, catalog_id=cat.id, target_type="c", target_name="x"))
        session.commit()
        session.execute(text("DELETE FROM catalog"))
        session.commit()
        for table in ("package", "package_parent", "version", "target"):
            assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0


def test_migrations_match_the_table_definitions(pg_url: str) -> None:
    """What the migrations build is what tables.py declares (no drift between the two)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from syncd.db.tables import Base

    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    # Alembic cannot compare expression indexes by text, so it reports those as remove+add.
    expression_indexes = {"ix_version_toolchain_name", "ix_package_name_lower"}
    real = [d for d in diffs if not (d[0].endswith("_index") and d[1].name in expression_indexes)]
    assert real == []
