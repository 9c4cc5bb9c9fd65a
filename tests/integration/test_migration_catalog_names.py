"""Migration 0009: the unique index on (lower(name), version, catalog_type), on SQLite and
PostgreSQL. Rows whose names differ only in case stop the upgrade before anything changes,
each named, and `syncd migrate` says so; once they are resolved the upgrade goes through."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from syncd.db.engine import make_engine
from syncd.db.migrate import current_revision, upgrade
from tests.support.services import postgres_database

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own (the shared ones are migrated to head)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        with postgres_database("syncd_mig8") as url:
            yield url


def _insert(engine: Engine, name: str, version: str = "2023.06") -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO catalog (uuid, created, modified, name, version, catalog_type, "
                "source_url, description, metadata, auto_update_enabled, update_errors, "
                "package_count, version_count, target_count, upstream_validators, "
                "content_hash) VALUES (:uuid, :now, :now, :name, :version, 'binary_runtime', "
                "'', '', '{}', true, '', 0, 0, 0, '{}', '')"
            ),
            {
                "uuid": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4(),
                "now": datetime.now(UTC),
                "name": name,
                "version": version,
            },
        )


def _migrate(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd.cli", "migrate"],
        cwd=REPO,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")},
            "SYNCD_DATABASE_URL": url,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_names_differing_in_case_stop_the_upgrade_until_resolved(bare_url: str) -> None:
    upgrade(bare_url, "0008")
    engine = make_engine(bare_url)
    try:
        _insert(engine, "EESSI")
        _insert(engine, "eessi")
        _insert(engine, "eessi", version="2025.06")  # another version: no collision
        _insert(engine, "Spack")

        refused = _migrate(bare_url)
        assert refused.returncode == 1, refused.stdout
        message = refused.stderr
        assert "differ only in case" in message and "Traceback" not in message
        assert "'EESSI' 2023.06 (binary_runtime" in message
        assert "'eessi' 2023.06 (binary_runtime" in message
        assert "2025.06" not in message and "Spack" not in message
        assert current_revision(engine) == "0008"  # nothing changed

        with engine.begin() as conn:  # the operator resolves it
            conn.execute(text("DELETE FROM catalog WHERE name = 'eessi' AND version = '2023.06'"))
        done = _migrate(bare_url)
        assert done.returncode == 0, done.stderr
        assert current_revision(engine) is not None and current_revision(engine) != "0008"
        with pytest.raises(IntegrityError):
            _insert(engine, "EeSsI")
    finally:
        engine.dispose()
