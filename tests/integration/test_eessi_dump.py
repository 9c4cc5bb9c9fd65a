"""EESSI dump files (Waldur's `load_eessi_catalog --json-file` format) as a source of the
EESSI adapter, through the real `syncd import` / `syncd update` on both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.tables import Catalog
from tests.support import upstream_data
from tests.support.eessi_dump import dump_counts, eessi_dump
from tests.support.syncd_cli import run_syncd

syncd = run_syncd


@pytest.fixture
def api(db_url: str, engine: Engine) -> Iterator[TestClient]:
    settings = Settings(database_url=db_url, api_cache_seconds=0)
    with TestClient(create_app(settings, engine=engine, fetcher=object())) as client:
        yield client


def _all(client: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = client.get(path, params={"page_size": 500, **params})
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["X-Result-Count"]) <= 500
    rows: list[dict[str, Any]] = answer.json()
    return rows


def _catalog(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(Catalog)).one()


def test_dump_file_loads_as_an_eessi_catalog(
    tmp_path: Path, db_url: str, engine: Engine, api: TestClient
) -> None:
    dump = eessi_dump(upstream_data.eessi_software_document(), "2023.06")
    path = tmp_path / "eessi-2023.06.json"
    path.write_text(json.dumps(dump))
    done = syncd(["import", "EESSI", "--source", path.as_uri()], tmp_path, db_url)
    assert done.returncode == 0, done.stderr
    assert "EESSI 2023.06" in done.stdout

    row = _catalog(engine)
    assert (row.name, row.version, row.catalog_type) == ("EESSI", "2023.06", "binary_runtime")
    assert row.update_errors == ""
    assert row.metadata["architectures_map"]["2023.06"]["x86_64/amd/zen4"] == "x86_64/amd/zen4"
    packages, versions, targets = dump_counts(dump)
    uuid = row.uuid.hex
    assert len(_all(api, "/api/marketplace-software-packages/", catalog_uuid=uuid)) == packages
    assert len(_all(api, "/api/marketplace-software-versions/", catalog_uuid=uuid)) == versions
    found = _all(api, "/api/marketplace-software-targets/", catalog_uuid=uuid)
    assert len(found) == targets
    # A target per path and version: the path's family and the rest, the path as location.
    zen4 = [t for t in found if t["target_subtype"] == "amd/zen4"]
    assert len(zen4) == versions
    assert zen4[0]["target_name"] == "x86_64"
    assert zen4[0]["location"] == (
        "/cvmfs/software.eessi.io/versions/2023.06/software/linux/x86_64/amd/zen4"
    )


def test_a_file_of_neither_format_is_a_clear_permanent_error(
    tmp_path: Path, db_url: str, engine: Engine, api: TestClient
) -> None:
    dump = eessi_dump(upstream_data.eessi_software_document(), "2025.06")
    path = tmp_path / "eessi.json"
    path.write_text(json.dumps(dump))
    assert syncd(["import", "EESSI", "--source", path.as_uri()], tmp_path, db_url).returncode == 0
    uuid = _catalog(engine).uuid.hex
    before = _all(api, "/api/marketplace-software-versions/", catalog_uuid=uuid)

    path.write_text(json.dumps({"data": {"software": {}}}))
    failed = syncd(["update", uuid], tmp_path, db_url)
    assert failed.returncode == 1
    assert "neither the EESSI API format" in failed.stderr
    row = _catalog(engine)
    assert "neither the EESSI API format" in row.update_errors
    assert "an EESSI dump file" in row.update_errors
    assert _all(api, "/api/marketplace-software-versions/", catalog_uuid=uuid) == before

    path.write_text(json.dumps({"targets": ["/opt/x86_64"], "software": {"A": {}}}))
    failed = syncd(["update", uuid], tmp_path, db_url)
    assert failed.returncode == 1
    assert "/versions/<version>/software/linux/<arch>" in _catalog(engine).update_errors
    assert _all(api, "/api/marketplace-software-versions/", catalog_uuid=uuid) == before
