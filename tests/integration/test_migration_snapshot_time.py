"""Migration 0006 backfills catalog.upstream_snapshot_at from the EESSI/Spack metadata, so the
first update after the upgrade is already guarded against a stale mirror."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from syncd.db.engine import make_engine
from syncd.db.migrate import upgrade
from tests.support.services import postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own (the shared ones are migrated to head)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        with postgres_database("syncd_mig5") as url:
            yield url


def test_backfill_from_the_metadata(bare_url: str) -> None:
    upgrade(bare_url, "0005")
    rows = [
        ("EESSI", "2023.06", "binary_runtime", {"timestamp": "2026-03-18T02:15:12.970204Z"}),
        ("Spack", "2026.11.27", "source_package", {"last_update": "2026-11-27 05:38:00.05"}),
        ("EESSI", "2025.06", "binary_runtime", {"timestamp": "not a time"}),
        ("Toy", "1.0", "package_manager", {"timestamp": "2026-01-01T00:00:00Z"}),
    ]
    engine = make_engine(bare_url)
    try:
        with engine.begin() as conn:
            for name, version, catalog_type, metadata in rows:
                conn.execute(
                    text(
                        "INSERT INTO catalog (uuid, created, modified, name, version, "
                        "catalog_type, source_url, description, metadata, auto_update_enabled, "
                        "update_errors, package_count, version_count, target_count, "
                        "upstream_validators, content_hash) VALUES (:uuid, :now, :now, :name, "
                        ":version, :type, '', '', :metadata, true, '', 0, 0, 0, '{}', '')"
                    ),
                    {
                        "uuid": uuid.uuid4().hex if "sqlite" in bare_url else uuid.uuid4(),
                        "now": datetime.now(UTC),
                        "name": name,
                        "version": version,
                        "type": catalog_type,
                        "metadata": json.dumps(metadata),
                    },
                )
        upgrade(bare_url)
        with engine.connect() as conn:
            found = dict(
                conn.execute(text("SELECT version, upstream_snapshot_at FROM catalog")).all()
            )
    finally:
        engine.dispose()

    def utc(value: object) -> datetime | None:
        if isinstance(value, str):  # SQLite through a textual query
            value = datetime.fromisoformat(value)
        assert value is None or isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value

    assert utc(found["2023.06"]) == datetime(2026, 3, 18, 2, 15, 12, tzinfo=UTC)
    assert utc(found["2026.11.27"]) == datetime(2026, 11, 27, 5, 38, tzinfo=UTC)
    assert found["2025.06"] is None  # unreadable: unknown, nothing refused
    assert found["1.0"] is None  # not an adapter whose metadata key is known
