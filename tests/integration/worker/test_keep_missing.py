"""Keep missing: a refresh that adds and updates but deletes nothing upstream dropped (a site
whose mirror is a partial copy), through `syncd update --keep-missing` as a process on both
backends, and through an AMQP message's `keep_missing` kwarg to a real worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd import service
from syncd.config import Settings
from syncd.db.tables import Catalog, Package, Version
from syncd.outcomes import read_outcome
from tests.integration.worker.conftest import StartWorker
from tests.integration.worker.fakes import (
    STABLE_VERSIONS,
    FakeAdapter,
    catalog_row,
    contents,
    wait_until,
)
from tests.integration.worker.rabbit import envelope, publish_raw
from tests.support.catalog_cli import FIRST, changed_spack, run_syncd, spack_env, write

WAIT = 30.0


def versions_by_package(engine: Engine, catalog_id: int) -> dict[str, tuple[int, set[str]]]:
    """package name -> (its stored version_count, its versions)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Package.name, Package.version_count, Version.version)
            .outerjoin(Version, Version.package_id == Package.id)
            .where(Package.catalog_id == catalog_id)
        ).all()
    out: dict[str, tuple[int, set[str]]] = {}
    for name, count, version in rows:
        out.setdefault(name, (count, set()))[1].add(version)
    return out


def test_syncd_update_keep_missing_keeps_what_upstream_dropped(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "repology.json"
    write(source, FIRST)
    env = spack_env(db_url, source)
    done = run_syncd(env, "import", "Spack")
    assert done.returncode == 0, done.stderr
    with engine.connect() as conn:
        catalog_id, uuid = conn.execute(select(Catalog.id, Catalog.uuid)).one()
    first = versions_by_package(engine, catalog_id)
    write(source, changed_spack())

    done = run_syncd(env, "update", uuid.hex, "--keep-missing")
    assert done.returncode == 0, done.stderr

    now = versions_by_package(engine, catalog_id)
    assert set(now) == set(first) | {"pkg-100"}  # pkg-010 and pkg-011 kept, pkg-100 added
    assert now["pkg-010"] == first["pkg-010"] and now["pkg-011"] == first["pkg-011"]
    assert now["pkg-005"] == (2, {"0.5.10", "1.5.9"})  # the dropped version kept, and counted
    assert now["pkg-004"] == (2, {"0.4.10", "9.9.9"})  # the new version added
    row = catalog_row(engine, id=catalog_id)
    assert (row.package_count, row.version_count) == (13, 37)  # of the rows the catalog holds
    assert row.update_errors == ""
    with engine.connect() as conn:
        summary = conn.execute(
            select(Package.description).where(Package.name == "pkg-003")
        ).scalar_one()
    assert summary.startswith("Changed upstream.")


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_amqp_keep_missing_kwarg(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    """generation 1 has pkg0..pkg4 at versions 0.1, 0.2 and 1.i; generation 2 has pkg0..pkg3
    at 0.1, 0.2 and 2.i. With
    keep_missing the catalog holds both generations' versions, and pkg4."""
    fake = FakeAdapter()
    start_worker({"Fake": fake})
    first = service.import_catalog(pg_engine, {"Fake": fake}, None, name="Fake")
    fake.generation = 2
    queue, url = mq_settings.queue_name, mq_settings.broker_url

    message = envelope(queue, "update_catalog", catalog_uuid=first.catalog_uuid, keep_missing=True)
    publish_raw(url, queue, message)
    wait_until(lambda: _final(pg_engine, message), WAIT)
    outcome = read_outcome(pg_engine, message["message_id"])
    assert outcome is not None and outcome.succeeded, outcome

    expected: set[tuple[Any, ...]] = set()
    for i in range(5):
        description = f"package {i}, generation {2 if i < 4 else 1}"
        for number in (*STABLE_VERSIONS, f"1.{i}", *([f"2.{i}"] if i < 4 else [])):
            expected.add((f"pkg{i}", description, number))
    assert contents(pg_engine, first.catalog_id) == expected
    row = catalog_row(pg_engine, id=first.catalog_id)
    assert (row.package_count, row.version_count, row.update_errors) == (5, 19, "")


def _final(engine: Engine, message: dict[str, Any]) -> bool:
    outcome = read_outcome(engine, message["message_id"])
    return outcome is not None and outcome.final
