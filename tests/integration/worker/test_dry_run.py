"""`syncd import --dry-run` and `syncd update --dry-run [--keep-missing] [--json]` as
processes, on SQLite and PostgreSQL: the output names what would change, and the database is
the same afterwards, row for row (timestamps, update_errors and outcomes included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd.db.tables import Catalog, Package
from tests.support.catalog_cli import (
    CHANGED_SPACK_DERIVED,
    CHANGED_SPACK_NEWS,
    FIRST,
    changed_spack,
    database_dump,
    run_syncd,
    spack_env,
    truncated_spack,
    write,
)

KINDS = {
    "package_added",
    "package_removed",
    "package_updated",
    "version_added",
    "version_removed",
    "version_updated",
    "target_added",
    "target_removed",
}
EXPECTED = CHANGED_SPACK_NEWS | CHANGED_SPACK_DERIVED


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


def plan(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = run_syncd(env, *args, "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    assert doc["dry_run"] is True and doc["written"] is False
    assert set(doc["change_totals"]) == KINDS
    return doc


def named(doc: dict[str, Any], kinds: set[str]) -> set[tuple[str, str, str]]:
    return {
        (c["change"], c["package_name"], c.get("version", ""))
        for c in doc["changes"]
        if c["change"] in kinds
    }


def package_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(Package.name)).scalars())


def test_update_dry_run_names_the_changes_and_writes_nothing(
    engine: Engine, db_url: str, source: Path
) -> None:
    env = spack_env(db_url, source)
    uuid = imported(engine, env)
    write(source, changed_spack())
    before = database_dump(engine)

    text = run_syncd(env, "update", uuid, "--dry-run")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert f"dry run of update of Spack 2026.11.27 (catalog {uuid}): nothing was written" in out
    assert "package_added (1): pkg-100\n" in out
    assert "package_removed (2): pkg-010, pkg-011\n" in out
    assert "version_added (3): pkg-004 9.9.9, pkg-100 0.1.10, pkg-100 1.1.9\n" in out
    assert "shrink guard: pass (removes 2 of 12 packages, 8 of 34 versions; limit 50%)" in out
    assert database_dump(engine) == before

    doc = plan(env, "update", uuid)
    assert database_dump(engine) == before
    assert doc["catalog"]["uuid"] == uuid and doc["catalog"]["exists"] is True
    assert named(doc, KINDS - {"target_added", "target_removed"}) == EXPECTED
    targets = {
        (c["change"], c["package_name"], c["version"], c["targets"])
        for c in doc["changes"]
        if c["change"].startswith("target")
    }
    assert ("target_added", "pkg-004", "9.9.9", 3) in targets
    assert ("target_removed", "pkg-005", "1.5.9", 2) in targets
    assert doc["counts"]["packages"] == {"created": 1, "updated": 3, "deleted": 2, "unchanged": 7}
    assert doc["counts"]["versions"]["deleted"] == 8 and doc["changes_not_listed"] == 0
    assert doc["shrink_guard"]["verdict"] == "pass"

    # What the dry run announced is what the update then does.
    done = run_syncd(env, "update", uuid)
    assert done.returncode == 0, done.stderr
    assert package_names(engine) == {n for n in changed_spack()["packages"] if n != "pkg-alias"}
    again = plan(env, "update", uuid)
    assert again["upstream_unchanged"] or sum(again["change_totals"].values()) == 0


def test_import_dry_run_of_a_new_catalog_diffs_against_nothing(
    engine: Engine, db_url: str, source: Path
) -> None:
    env = spack_env(db_url, source)
    before = database_dump(engine)

    text = run_syncd(env, "import", "Spack", "--dry-run")
    assert text.returncode == 0, text.stderr
    assert (
        "dry run of import of Spack 2026.11.27 (a new catalog): nothing was written" in text.stdout
    )
    assert "package_added (12): pkg-000, pkg-001," in text.stdout
    assert ", and 2 more\n" in text.stdout  # ten names shown per kind
    doc = plan(env, "import", "Spack")
    assert database_dump(engine) == before  # no catalog row, no package, nothing
    assert doc["catalog"] == {
        "uuid": None,
        "name": "Spack",
        "version": "2026.11.27",
        "catalog_type": "source_package",
        "exists": False,
    }
    assert doc["change_totals"]["package_added"] == 12
    assert doc["change_totals"]["version_added"] == 34
    assert sum(doc["change_totals"].values()) - 12 - 34 == doc["change_totals"]["target_added"]

    # Against a stored catalog, an import's dry run diffs against it.
    uuid = imported(engine, env)
    write(source, changed_spack())
    before = database_dump(engine)
    doc = plan(env, "import", "Spack")
    assert doc["catalog"]["uuid"] == uuid
    assert named(doc, KINDS - {"target_added", "target_removed"}) == EXPECTED
    assert database_dump(engine) == before


def test_shrink_guard_verdict_and_keep_missing(engine: Engine, db_url: str, source: Path) -> None:
    env = spack_env(db_url, source)
    uuid = imported(engine, env)
    write(source, truncated_spack(3))  # 9 of 12 packages gone: a truncated upstream
    before = database_dump(engine)

    text = run_syncd(env, "update", uuid, "--dry-run")
    assert "shrink guard: would refuse (removes 9 of 12 packages" in text.stdout
    doc = plan(env, "update", uuid)
    assert doc["shrink_guard"] == {
        "verdict": "refuse",
        "max_shrink_fraction": 0.5,
        "packages_before": 12,
        "packages_removed": 9,
        "versions_before": 34,
        "versions_removed": 27,
    }
    kept = plan(env, "update", uuid, "--keep-missing")
    assert kept["keep_missing"] is True and kept["shrink_guard"]["verdict"] == "pass"
    assert sum(n for k, n in kept["change_totals"].items() if k.endswith("_removed")) == 0
    assert kept["counts"]["packages"]["deleted"] == 0
    assert database_dump(engine) == before


def test_a_failing_dry_run_records_nothing(engine: Engine, db_url: str, source: Path) -> None:
    """No update_errors, no attempt stamp: a dry run leaves no trace, even when it fails."""
    env = spack_env(db_url, source)
    uuid = imported(engine, env)
    source.write_text("{ not json")
    before = database_dump(engine)
    failed = run_syncd(env, "update", uuid, "--dry-run")
    assert failed.returncode == 1
    assert "dry run of update failed (nothing was written)" in failed.stderr
    assert database_dump(engine) == before
