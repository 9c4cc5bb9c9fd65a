"""A refresh whose content is the last sync's is "unchanged" without parsing or staging, however
upstream's validators moved: the body's sha256 (kept per URL beside ETag/Last-Modified) and
EESSI's hashes.json tell. Through the service on SQLite and PostgreSQL, with the real
adapters on the fake upstream (and file:// mirrors)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, select

import adapters.eessi.adapter as eessi_adapter_module
import adapters.spack as spack_module
from adapters.base import load_adapters
from adapters.fetch import Fetcher
from syncd import metrics, service
from syncd.config import Settings
from syncd.db.tables import Package, Target, Version
from tests.integration.worker.fakes import catalog_row
from tests.support.fake_upstream import FakeUpstream

EESSI_FILES = (FakeUpstream.EESSI_SOFTWARE, FakeUpstream.RISCV)


@pytest.fixture
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(hashes_json=True) as server:
        yield server


def forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on any parse of a data file fails the test: an unchanged refresh must not
    read one."""
    monkeypatch.setattr(eessi_adapter_module, "read_header", _refuse)
    monkeypatch.setattr(spack_module, "read_top_level", _refuse)


def written(engine: Engine, catalog_id: int) -> list[tuple[Any, ...]]:
    """Every content row of a catalog with its modified stamp: what a write would move."""
    rows: list[tuple[Any, ...]] = []
    with engine.connect() as conn:
        for table in (Package, Version, Target):
            query = select(table.id, table.modified).where(table.catalog_id == catalog_id)
            rows.extend(tuple(r) for r in conn.execute(query.order_by(table.id)))
    return rows


def sync_columns(engine: Engine, catalog_id: int) -> tuple[Any, ...]:
    """The catalog row's columns only a sync writes."""
    row = catalog_row(engine, id=catalog_id)
    return (
        row.upstream_validators,
        row.content_hash,
        row.package_count,
        row.version_count,
        row.target_count,
        row.description,
        row.metadata,
    )


def not_modified_count(adapter: str) -> float:
    return float(metrics.UPSTREAM_NOT_MODIFIED.labels(adapter=adapter)._value.get())


def refresh(
    engine: Engine, settings: Settings, uuid: str
) -> tuple[service.CommandResult, list[dict[str, Any]]]:
    with Fetcher(settings) as fetcher, structlog.testing.capture_logs() as logs:
        result = service.update_catalog(engine, load_adapters(settings), fetcher, catalog_uuid=uuid)
    return result, logs


def first_import(engine: Engine, settings: Settings, name: str, **kw: Any) -> Any:
    with Fetcher(settings) as fetcher:
        return service.import_catalog(engine, load_adapters(settings), fetcher, name=name, **kw)


def assert_unchanged(
    engine: Engine,
    result: service.CommandResult,
    logs: list[dict[str, Any]],
    before: tuple[list[Any], tuple[Any, ...]],
) -> None:
    assert not result.changed and result.stats is None
    assert (written(engine, result.catalog_id), sync_columns(engine, result.catalog_id)) == before
    events = [e for e in logs if e["event"] == "upstream_not_modified"]
    assert len(events) == 1 and events[0].get("compared") == "hash", logs


def state(engine: Engine, catalog_id: int) -> tuple[list[Any], tuple[Any, ...]]:
    return written(engine, catalog_id), sync_columns(engine, catalog_id)


# --- the whole-body hash --------------------------------------------------------------------


def test_spack_identical_body_with_a_new_etag_is_unchanged(
    engine: Engine, up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = up.settings()
    first = first_import(engine, settings, "Spack")
    stored = catalog_row(engine, id=first.catalog_id).upstream_validators[up.spack_url]
    assert len(stored["hash"]) == 64  # kept for the run history and the next refresh
    before = state(engine, first.catalog_id)
    counted = not_modified_count("Spack")

    up.fault(up.SPACK, "changed_etag")
    forbid_parsing(monkeypatch)
    result, logs = refresh(engine, settings, first.catalog_uuid)

    assert_unchanged(engine, result, logs, before)
    assert up.requests_for(up.SPACK)[-1].body_bytes > 0  # downloaded: only its hash told
    assert not_modified_count("Spack") == counted + 1


def test_import_again_of_the_same_body_under_a_new_etag_writes_nothing(
    engine: Engine, up: FakeUpstream
) -> None:
    """An import without a version downloads unconditionally (the version comes from the
    data): the same body under new validators is still the catalog's last sync."""
    settings = up.settings()
    first = first_import(engine, settings, "Spack")
    before = state(engine, first.catalog_id)
    up.fault(up.SPACK, "changed_etag")
    with Fetcher(settings) as fetcher, structlog.testing.capture_logs() as logs:
        again = service.import_catalog(engine, load_adapters(settings), fetcher, name="Spack")
    assert again.catalog_uuid == first.catalog_uuid
    assert_unchanged(engine, again, logs, before)


def test_spack_one_byte_changed_is_synced(engine: Engine, up: FakeUpstream) -> None:
    settings = up.settings()
    first = first_import(engine, settings, "Spack")
    old_hash = catalog_row(engine, id=first.catalog_id).upstream_validators[up.spack_url]["hash"]
    changed = one_byte_changed(up.content(up.SPACK), key=b'"summary"')
    assert len(changed) == len(up.content(up.SPACK)) and changed != up.content(up.SPACK)
    up.set_file(up.SPACK, changed)

    result, _logs = refresh(engine, settings, first.catalog_uuid)

    assert result.changed and result.stats is not None and result.stats.rows_written > 0
    validators = catalog_row(engine, id=first.catalog_id).upstream_validators[up.spack_url]
    assert validators["hash"] != old_hash


def one_byte_changed(body: bytes, key: bytes = b'"description"') -> bytes:
    """`body` with the first character of the first `key`'s string value changed."""
    index = body.index(key) + len(key)
    index = body.index(b'"', index + 1) + 1
    return body[:index] + (b"#" if body[index : index + 1] != b"#" else b"%") + body[index + 1 :]


def _mirror(tmp_path: Path, up: FakeUpstream) -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir()
    for path in EESSI_FILES:
        (folder / path.rsplit("/", 1)[-1]).write_bytes(up.content(path))
    return folder


def _copy_again(folder: Path) -> None:
    """What an rsync of an unchanged mirror may do: same bytes, new mtimes."""
    for path in folder.iterdir():
        copy = path.with_suffix(".tmp")
        shutil.copyfile(path, copy)
        os.utime(copy, (path.stat().st_mtime + 60, path.stat().st_mtime + 60))
        copy.replace(path)


def test_eessi_file_mirror_copied_again_is_unchanged_and_a_byte_change_syncs(
    engine: Engine, up: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _mirror(tmp_path, up)
    settings = Settings(allow_file_sources=True)
    first = first_import(engine, settings, "EESSI", source=folder.as_uri())
    before = state(engine, first.catalog_id)

    _copy_again(folder)
    with monkeypatch.context() as patched:
        patched.setattr(eessi_adapter_module, "read_header", _refuse)
        result, logs = refresh(engine, settings, first.catalog_uuid)
    assert_unchanged(engine, result, logs, before)

    software = folder / up.EESSI_SOFTWARE.rsplit("/", 1)[-1]
    software.write_bytes(one_byte_changed(software.read_bytes()))
    result, _logs = refresh(engine, settings, first.catalog_uuid)
    assert result.changed and result.stats is not None  # parsed and synced again
    stored = catalog_row(engine, id=first.catalog_id).upstream_validators[software.as_uri()]
    assert stored["hash"] == hashlib.sha256(software.read_bytes()).hexdigest()


# --- EESSI's hashes.json ----------------------------------------------------------------------


def eessi_import(engine: Engine, up: FakeUpstream) -> Any:
    return first_import(engine, up.settings(), "EESSI")


def data_requests(up: FakeUpstream) -> list[Any]:
    return [r for r in up.requests if r.path != up.HASHES]


def test_hashes_json_unchanged_requests_no_data_file(
    engine: Engine, up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = eessi_import(engine, up)
    before = state(engine, first.catalog_id)
    forbid_parsing(monkeypatch)
    for path in EESSI_FILES:
        up.fault(path, "changed_etag")  # a redeploy: every validator new, no byte changed
    up.reset_requests()

    result, logs = refresh(engine, up.settings(), first.catalog_uuid)

    assert_unchanged(engine, result, logs, before)
    assert data_requests(up) == []  # the extension files it does not list: still absent
    assert [r.status for r in up.requests_for(up.HASHES)] == [200]


def test_hashes_json_names_the_changed_file(engine: Engine, up: FakeUpstream) -> None:
    first = eessi_import(engine, up)
    up.set_file(up.EESSI_SOFTWARE, one_byte_changed(up.content(up.EESSI_SOFTWARE)))
    up.reset_requests()

    result, logs = refresh(engine, up.settings(), first.catalog_uuid)

    assert result.changed and result.stats is not None
    assert not any(e["event"].startswith("hashes_json") for e in logs), logs
    assert [r.path for r in data_requests(up)] == [up.EESSI_SOFTWARE]


@pytest.mark.parametrize(
    ("fault", "options", "reason"),
    [
        ("missing", {}, "not found (404)"),
        ("malformed", {}, "has no sha256 hash"),
        ("invalid_json", {}, "not valid JSON"),
        ("wrong_schema", {}, "does not list"),
        ("deep_nesting", {"depth": 100_000}, "not valid JSON"),
        ("oversized", {"size": 8 << 20}, "larger than the limit"),
        ("500", {}, "HTTP 500"),
    ],
)
def test_unusable_hashes_json_falls_back_to_conditional_requests(
    engine: Engine,
    up: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    options: dict[str, Any],
    reason: str,
) -> None:
    first = eessi_import(engine, up)
    before = state(engine, first.catalog_id)
    forbid_parsing(monkeypatch)
    up.fault(up.HASHES, fault, **options)
    up.reset_requests()

    with Fetcher(up.settings(fetch_retries=0)) as fetcher, structlog.testing.capture_logs() as logs:
        result = service.update_catalog(
            engine, load_adapters(up.settings()), fetcher, catalog_uuid=first.catalog_uuid
        )

    assert not result.changed and state(engine, first.catalog_id) == before
    why = [e for e in logs if e["event"] == "hashes_json_unusable"]
    assert len(why) == 1 and reason in why[0]["reason"], logs
    assert {r.status for r in up.requests_for(up.EESSI_SOFTWARE)} == {304}


def test_wrong_hashes_are_distrusted_and_the_bodies_decide(
    engine: Engine, up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = eessi_import(engine, up)
    before = state(engine, first.catalog_id)
    forbid_parsing(monkeypatch)
    up.fault(up.HASHES, "wrong_hash")
    up.fault(up.EESSI_SOFTWARE, "changed_etag")

    result, logs = refresh(engine, up.settings(), first.catalog_uuid)

    assert_unchanged(engine, result, logs, before)  # downloaded, hashed, the same
    assert len([e for e in logs if e["event"] == "hashes_json_distrusted"]) == 1


def test_a_stale_hashes_json_never_hides_a_change(engine: Engine) -> None:
    """hashes.json left behind by its data: its entry of the software file is older than
    the catalog's (the file answers 304: it is still what the catalog holds), and its entry
    of the extension file states the stored hash although that file changed since. The
    disagreement makes the files it vouched for be asked again, and the change is synced."""
    with FakeUpstream("synthetic", hashes_json=True) as up:
        ext = "/eessi/eessi_api_metadata_ext-python.json"
        first = eessi_import(engine, up)
        up.set_file(up.EESSI_SOFTWARE, one_byte_changed(up.content(up.EESSI_SOFTWARE)))
        assert refresh(engine, up.settings(), first.catalog_uuid)[0].changed
        up.set_file(ext, one_byte_changed(up.content(ext)))
        # Generations: software, +ext, software changed, ext changed: serve the second.
        up.fault(up.HASHES, "stale", generations=2)

        result, logs = refresh(engine, up.settings(), first.catalog_uuid)

        new_hash = hashlib.sha256(up.content(ext)).hexdigest()
        stored = catalog_row(engine, id=first.catalog_id).upstream_validators
        assert result.changed and result.stats is not None
        assert stored[up.url(ext)]["hash"] == new_hash  # the changed file was read and synced
        assert len([e for e in logs if e["event"] == "hashes_json_distrusted"]) == 1


def _refuse(*_a: Any, **_k: Any) -> Any:
    raise AssertionError("an unchanged body was parsed")
