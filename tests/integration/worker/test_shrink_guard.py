"""The shrink guard: an update whose upstream lost more than SYNCD_MAX_SHRINK_FRACTION of a
catalog's packages is refused with nothing written, through `syncd update [--allow-shrink]`
as a process on both backends, and through an AMQP message to a real worker (dead-lettered
at once, not retried; `allow_shrink: true` lets it through)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, select

from syncd import service
from syncd.config import Settings
from syncd.db.tables import Catalog, Package
from syncd.outcomes import read_outcome
from tests.integration.worker.conftest import StartWorker
from tests.integration.worker.fakes import ShrinkingAdapter, catalog_row, contents, wait_until
from tests.integration.worker.rabbit import envelope, message_count, publish_raw
from tests.support.catalog_cli import (
    FIRST,
    changed_spack,
    database_dump,
    run_syncd,
    spack_env,
    truncated_spack,
    write,
)

WAIT = 30.0
REFUSED = (
    "upstream would remove 9 of 12 packages (75%), more than SYNCD_MAX_SHRINK_FRACTION=0.5; "
    "nothing was changed"
)
# What a refused update may write: the attempt's stamp and update_errors on the catalog row.
CONTENT_TABLES = ("package", "package_parent", "version", "target")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "repology.json"
    write(path, FIRST)
    return path


def imported(engine: Engine, env: dict[str, str]) -> str:
    done = run_syncd(env, "import", "Spack")
    assert done.returncode == 0, done.stderr
    with engine.connect() as conn:
        return str(conn.execute(select(Catalog.uuid)).scalar_one().hex)


def contents_dump(engine: Engine) -> dict[str, Any]:
    """The catalog's rows, and its row's data columns (not the attempt's stamps)."""
    dump = database_dump(engine)
    with engine.connect() as conn:
        row = conn.execute(select(Catalog.__table__)).one()._mapping
    keep = ("name", "version", "package_count", "version_count", "target_count", "metadata")
    return {name: dump[name] for name in CONTENT_TABLES} | {k: row[k] for k in keep}


def package_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(Package.name)).all())


def update_errors(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(Catalog.update_errors)).scalar_one())


def test_an_update_removing_most_packages_is_refused_until_allowed(
    engine: Engine, db_url: str, source: Path
) -> None:
    env = spack_env(db_url, source)
    uuid = imported(engine, env)
    write(source, truncated_spack(3))  # 9 of 12 packages gone: a truncated upstream
    before = contents_dump(engine)

    refused = run_syncd(env, "update", uuid)
    assert refused.returncode == 1, refused.stdout
    assert REFUSED in refused.stderr
    assert contents_dump(engine) == before  # the previous catalog, row for row
    assert REFUSED in update_errors(engine)
    assert "syncd update UUID --force" in update_errors(engine)

    # The dry run's verdict is the same function's, with the same numbers.
    plan = run_syncd(env, "update", uuid, "--dry-run")
    verdict = "would refuse (removes 9 of 12 packages, 27 of 34 versions; limit 50%)"
    assert f"shrink guard: {verdict}" in plan.stdout

    kept = run_syncd(env, "update", uuid, "--keep-missing")  # deletes nothing: never shrinks
    assert kept.returncode == 0, kept.stderr
    assert package_count(engine) == 12

    again = truncated_spack(3)  # other bytes: not answered "not modified" after keep-missing
    again["packages"]["pkg-000"]["summary"] = "Changed upstream.\n"
    write(source, again)
    allowed = run_syncd(env, "update", uuid, "--force")  # --allow-shrink: its older name
    assert allowed.returncode == 0, allowed.stderr
    assert package_count(engine) == 3
    assert update_errors(engine) == ""


def test_a_small_shrink_passes_and_the_setting_moves_the_limit(
    engine: Engine, db_url: str, source: Path
) -> None:
    env = spack_env(db_url, source)
    uuid = imported(engine, env)
    write(source, changed_spack())  # 2 of 12 packages dropped, 1 added
    done = run_syncd(env, "update", uuid)
    assert done.returncode == 0, done.stderr
    assert package_count(engine) == 11 and update_errors(engine) == ""

    write(source, truncated_spack(3))  # 8 of the 11 packages go (73%)
    strict = {**env, "SYNCD_MAX_SHRINK_FRACTION": "0.9"}
    plan = run_syncd(strict, "update", uuid, "--dry-run", "--json")
    guard = json.loads(plan.stdout)["shrink_guard"]
    assert guard["versions_removed"] < guard["versions_before"]  # counted as well
    del guard["versions_before"], guard["versions_removed"]
    assert guard == {
        "verdict": "pass",
        "max_shrink_fraction": 0.9,
        "packages_before": 11,
        "packages_removed": 8,  # pkg-000..pkg-002 stay
    }
    done = run_syncd(strict, "update", uuid)
    assert done.returncode == 0, done.stderr
    assert package_count(engine) == 3

    off = {**env, "SYNCD_MAX_SHRINK_FRACTION": "1"}  # 1.0 or more: the guard is off
    write(source, truncated_spack(1))
    assert "shrink guard: pass (removes 2 of 3 packages; off)" in (
        run_syncd(off, "update", uuid, "--dry-run").stdout
    )
    bad = run_syncd({**env, "SYNCD_MAX_SHRINK_FRACTION": "-1"}, "update", uuid)
    assert bad.returncode != 0 and "SYNCD_MAX_SHRINK_FRACTION" in bad.stderr


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_amqp_refused_update_is_dead_lettered_not_retried(
    mq_settings: Settings, pg_engine: Engine, start_worker: StartWorker
) -> None:
    fake = ShrinkingAdapter()
    start_worker({"Fake": fake})
    first = service.import_catalog(pg_engine, {"Fake": fake}, None, name="Fake")
    before = contents(pg_engine, first.catalog_id)
    fake.generation = 2
    queue, url = mq_settings.queue_name, mq_settings.broker_url
    calls = fake.calls

    refused = envelope(queue, "update_catalog", catalog_uuid=first.catalog_uuid)
    with structlog.testing.capture_logs() as logs:
        publish_raw(url, queue, refused)
        wait_until(lambda: message_count(url, f"{queue}.XQ") == 1, WAIT)
    assert fake.calls == calls + 1  # permanent: not retried
    reason = "upstream would remove 4 of 5 packages (80%)"
    assert reason in catalog_row(pg_engine, id=first.catalog_id).update_errors
    outcome = read_outcome(pg_engine, refused["message_id"])
    assert outcome is not None and outcome.final and not outcome.succeeded
    assert reason in outcome.error
    assert contents(pg_engine, first.catalog_id) == before
    failed = [e for e in logs if e["event"] == "command_failed"]  # the one log line
    assert len(failed) == 1, logs
    assert failed[0]["error_class"] == "ShrinkRefusedError" and failed[0]["will_retry"] is False
    assert reason in failed[0]["error"]

    allowed = envelope(queue, "update_catalog", catalog_uuid=first.catalog_uuid, allow_shrink=True)
    publish_raw(url, queue, allowed)
    wait_until(lambda: len({p for p, *_ in contents(pg_engine, first.catalog_id)}) == 1, WAIT)
    row = catalog_row(pg_engine, id=first.catalog_id)
    assert (row.package_count, row.update_errors) == (1, "")
