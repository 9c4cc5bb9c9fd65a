"""Portable catalogs: `syncd export UUID` and `syncd import-file FILE [--keep-uuids]` through
the real console script, SQLite -> PostgreSQL -> SQLite, compared through the HTTP API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema_rs
from fastapi.testclient import TestClient
from sqlalchemy import select

from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.db.migrate import upgrade
from syncd.db.tables import Catalog
from tests.support import upstream_data
from tests.support.eessi_old_format import documents
from tests.support.syncd_cli import run_syncd

SCHEMA = jsonschema_rs.validator_for(
    json.loads((Path(__file__).parents[2] / "docs" / "catalog-export.schema.json").read_text()),
    validate_formats=True,
)
PATHS = {
    "packages": "/api/marketplace-software-packages/",
    "versions": "/api/marketplace-software-versions/",
    "targets": "/api/marketplace-software-targets/",
}
# Row times are the importing site's; everything else must read the same.
LOCAL = ("created", "modified")


@contextmanager
def api(db_url: str) -> Iterator[TestClient]:
    engine = make_engine(db_url)
    settings = Settings(database_url=db_url, api_cache_seconds=0)
    try:
        with TestClient(create_app(settings, engine=engine, fetcher=object())) as client:
            yield client
    finally:
        engine.dispose()


def _strip(value: Any, drop: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_strip(v, drop) for v in value]
    return value


def answers(db_url: str, catalog_uuid: str, drop: tuple[str, ...] = LOCAL) -> dict[str, Any]:
    """Every package, version and target of the catalog as the API answers them."""
    found: dict[str, Any] = {}
    with api(db_url) as client:
        for kind, path in PATHS.items():
            rows: list[Any] = []
            page = 1
            while True:
                got = client.get(
                    path, params={"catalog_uuid": catalog_uuid, "page": page, "page_size": 200}
                )
                assert got.status_code == 200, got.text
                rows.extend(got.json())
                if len(rows) >= int(got.headers["X-Result-Count"]):
                    break
                page += 1
            found[kind] = _strip(rows, drop)
    return found


def only_catalog(db_url: str) -> str:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(select(Catalog.uuid)).scalar_one().hex)
    finally:
        engine.dispose()


def eessi_source(tmp_path: Path) -> str:
    """An EESSI source folder with extensions (parent links) and CPU/GPU targets."""
    folder = tmp_path / "upstream"
    for path, body in documents(upstream_data.eessi_software_document(8)).items():
        file = folder / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(body)
    return (folder / "eessi").as_uri() + "/"


def test_round_trip_sqlite_postgresql_sqlite(tmp_path: Path, sqlite_url: str, pg_url: str) -> None:
    source = eessi_source(tmp_path)
    done = run_syncd(["import", "EESSI", "--source", source, "--version", "2023.06"], tmp_path,
                     sqlite_url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    uuid = only_catalog(sqlite_url)
    first = answers(sqlite_url, uuid)
    assert first["targets"] and any(p["parent_softwares"] for p in first["packages"])

    exported = tmp_path / "catalog.json"
    done = run_syncd(["export", uuid], tmp_path, sqlite_url, stdout=exported)
    assert done.returncode == 0, done.stderr
    document = json.loads(exported.read_text())
    assert document["format"] == "syncd-catalog" and document["format_version"] == 1
    assert document["catalog"]["name"] == "EESSI"
    SCHEMA.validate(document)  # docs/catalog-export.schema.json describes what is written

    done = run_syncd(["import-file", str(exported), "--keep-uuids"], tmp_path, pg_url)
    assert done.returncode == 0, done.stderr
    assert f"catalog {uuid} EESSI 2023.06" in done.stdout
    assert only_catalog(pg_url) == uuid
    assert answers(pg_url, uuid) == first  # uuids and urls included

    # And back, with --keep-uuids (SQLite's staged write path), then without: new uuids,
    # the same answers otherwise.
    back = tmp_path / "back.json"
    assert run_syncd(["export", uuid], tmp_path, pg_url, stdout=back).returncode == 0
    kept_url, other_url = (f"sqlite:///{tmp_path / name}" for name in ("kept.db", "other.db"))
    upgrade(kept_url)
    done = run_syncd(["import-file", str(back), "--keep-uuids"], tmp_path, kept_url)
    assert done.returncode == 0, done.stderr
    assert answers(kept_url, uuid) == first
    upgrade(other_url)
    done = run_syncd(["import-file", str(back)], tmp_path, other_url)
    assert done.returncode == 0, done.stderr
    new_uuid = only_catalog(other_url)
    assert new_uuid != uuid
    ids = (*LOCAL, "uuid", "url", "catalog_uuid", "catalog", "package", "version",
           "package_uuid", "version_uuid", "parent_softwares")  # fmt: skip
    assert answers(other_url, new_uuid, ids) == _strip(first, ids)
    names = {p["name"]: sorted(q["name"] for q in p["parent_softwares"]) for p in first["packages"]}
    with api(other_url) as client:
        again = client.get(PATHS["packages"], params={"catalog_uuid": new_uuid, "page_size": 200})
    assert {p["name"]: sorted(q["name"] for q in p["parent_softwares"]) for p in again.json()} == (
        names
    )


def test_import_file_refreshes_an_existing_catalog_and_refuses_a_bad_file(
    tmp_path: Path, db_url: str
) -> None:
    source = eessi_source(tmp_path)
    args = ["import", "EESSI", "--source", source, "--version", "2025.06"]
    assert run_syncd(args, tmp_path, db_url).returncode == 0
    uuid = only_catalog(db_url)
    exported = tmp_path / "catalog.json"
    assert run_syncd(["export", uuid], tmp_path, db_url, stdout=exported).returncode == 0
    before = answers(db_url, uuid)

    # The site's own catalog, changed since the export: the file brings it back.
    document = json.loads(exported.read_text())
    dropped = sorted(document["packages"])[0]
    smaller = dict(document, packages={k: v for k, v in document["packages"].items()
                                       if k != dropped})  # fmt: skip
    edited = tmp_path / "smaller.json"
    edited.write_text(json.dumps(smaller))
    done = run_syncd(["import-file", str(edited)], tmp_path, db_url)
    assert done.returncode == 0, done.stderr
    assert "packages +0 ~0 -1" in done.stdout, done.stdout
    done = run_syncd(["import-file", str(exported), "--keep-uuids"], tmp_path, db_url)
    assert done.returncode == 0, done.stderr
    assert "packages +1" in done.stdout
    assert answers(db_url, uuid) == before  # the dropped package is back under its uuids

    for body, why in (
        ('{"format": "syncd-catalog", "format_version": 99, "packages": {}}', "format_version"),
        ('{"format": "syncd-catalog", "format_version": 1, "catalog": {', "JSON"),
        ("[1, 2]", "not a JSON object"),
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(body)
        done = run_syncd(["import-file", str(bad)], tmp_path, db_url)
        assert done.returncode == 1
        assert why in done.stderr, done.stderr
    assert only_catalog(db_url) == uuid  # no row made by a bad file
    assert answers(db_url, uuid) == before
    unknown = run_syncd(["export", "0" * 32], tmp_path, db_url)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "No catalog with uuid" in unknown.stderr
