"""Upstream data that costs far more than its size, through the fake upstream, the real
Fetcher, the Spack adapter and the service (what the worker runs) on PostgreSQL.

Each refusal is permanent (the same bytes fail the same way), names its reason in
update_errors and keeps the previous catalog row for row; a long field is stored cut, with
a warning, and the update succeeds. The one-off figures (an 80 KB file nesting 40,000
arrays, 4 to 64 MiB strings, a 64 KB gzip of 64 MiB) are in docs/reliability.md.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select

from adapters.base import load_adapters
from adapters.fetch import Fetcher
from syncd import service
from syncd.db.engine import make_engine
from syncd.db.tables import Package
from syncd.errors import UpstreamError
from tests.reliability.catalogs import catalog_row, fingerprint
from tests.support.fake_upstream import FakeUpstream

pytestmark = [pytest.mark.postgres]


@dataclass
class Imported:
    up: FakeUpstream
    engine: Engine
    fetcher: Fetcher
    adapters: dict[str, Any]
    uuid: str
    catalog_id: int

    def spack_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.up.content(FakeUpstream.SPACK))
        return doc

    def publish_change(self) -> None:
        """New upstream content (a changed summary): the next update downloads and parses."""
        doc = self.spack_doc()
        name = sorted(doc["packages"])[0]
        doc["packages"][name]["summary"] = f"changed at {time.monotonic()}"
        self.up.set_file(FakeUpstream.SPACK, json.dumps(doc).encode())

    def update(self) -> BaseException | None:
        try:
            service.update_catalog(
                self.engine, self.adapters, self.fetcher, catalog_uuid=self.uuid, will_retry=True
            )
        except Exception as exc:
            return exc
        return None

    def row(self) -> dict[str, Any]:
        row = catalog_row(self.engine, id=self.catalog_id)
        assert row is not None
        return row


def _imported(
    pg_url: str, up: FakeUpstream, *, deadline: float | None = None, **settings: Any
) -> Imported:
    config = up.settings(database_url=pg_url, fetch_retries=0, **settings)
    engine = make_engine(pg_url)
    fetcher = Fetcher(config, sleep=lambda _s: None, deadline=deadline)
    adapters = load_adapters(config)
    result = service.import_catalog(engine, adapters, fetcher, name="Spack")
    return Imported(up, engine, fetcher, adapters, result.catalog_uuid, result.catalog_id)


@pytest.fixture
def spack(pg_url: str) -> Iterator[Imported]:
    with FakeUpstream() as up:
        imported = _imported(pg_url, up, fetch_max_bytes=4 * 1024 * 1024)
        yield imported
        imported.fetcher.close()
        imported.engine.dispose()


def _assert_refused(spack: Imported, exc: BaseException | None, words: str, before: Any) -> None:
    """A permanent failure, its reason in update_errors, the catalog as it was."""
    assert isinstance(exc, UpstreamError), repr(exc)
    assert not service.is_transient(exc), exc.message
    row = spack.row()
    assert words in row["update_errors"], row["update_errors"]
    assert not row["update_errors"].endswith("(will retry)")
    assert row["last_successful_update"] < row["last_update_attempt"]
    assert fingerprint(spack.engine, spack.catalog_id) == before


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# --- 1. deep nesting ----------------------------------------------------------------------


def test_nesting_deeper_than_32_at_the_top_level_is_refused_while_parsing(
    spack: Imported,
) -> None:
    spack.publish_change()
    before = fingerprint(spack.engine, spack.catalog_id)
    spack.up.fault(FakeUpstream.SPACK, "deep_nesting", depth=100)
    exc = spack.update()
    _assert_refused(spack, exc, "more than 32 levels deep (in 'nested')", before)
    assert len(spack.up.requests_for(FakeUpstream.SPACK)) == 2  # import, one update


def test_nesting_deeper_than_32_inside_a_package_is_refused_and_named(spack: Imported) -> None:
    doc = spack.spack_doc()
    name = sorted(doc["packages"])[-1]
    doc["packages"][name]["patches"] = _nested(100)  # 100 arrays at depth 4..103
    spack.up.set_file(FakeUpstream.SPACK, json.dumps(doc).encode())
    before = fingerprint(spack.engine, spack.catalog_id)
    exc = spack.update()
    _assert_refused(spack, exc, f"(in 'packages' -> {name!r})", before)


def test_nesting_of_32_levels_is_accepted(spack: Imported) -> None:
    doc = spack.spack_doc()
    name = sorted(doc["packages"])[0]
    doc["packages"][name]["patches"] = _nested(32 - 3)  # root, packages, package: 3 levels
    spack.up.set_file(FakeUpstream.SPACK, json.dumps(doc).encode())
    assert spack.update() is None
    assert spack.row()["update_errors"] == ""


# --- 2. decompression, long strings, parse deadline ---------------------------------------


def _spaces_doc(spack: Imported, spaces: int) -> bytes:
    return spack.up.content(FakeUpstream.SPACK) + b" " * spaces


def test_a_gzip_body_without_content_encoding_counts_its_unpacked_bytes(
    spack: Imported,
) -> None:
    """A 16 MiB gzip member of spaces (about 16 KB on the wire) after the JSON, under a 4 MiB
    cap: refused like the same bytes sent with Content-Encoding (the next test)."""
    spack.publish_change()
    before = fingerprint(spack.engine, spack.catalog_id)
    spack.up.fault(FakeUpstream.SPACK, "gzip_body", padding=16 * 1024 * 1024)
    exc = spack.update()
    _assert_refused(spack, exc, "unpacks to more than the limit of 4194304 bytes", before)
    served = spack.up.requests_for(FakeUpstream.SPACK)[-1]
    assert served.body_bytes < 100_000
    # The same gzip body within the cap is read as before.
    spack.publish_change()
    spack.up.fault(FakeUpstream.SPACK, "gzip_body")
    assert spack.update() is None
    assert spack.row()["update_errors"] == ""


def test_the_same_bytes_with_content_encoding_are_refused_too(spack: Imported) -> None:
    before = fingerprint(spack.engine, spack.catalog_id)
    packed = gzip.compress(_spaces_doc(spack, 16 * 1024 * 1024), mtime=0)
    spack.up.set_file(FakeUpstream.SPACK, packed)  # sent with Content-Encoding: gzip
    exc = spack.update()
    _assert_refused(spack, exc, "SYNCD_FETCH_MAX_BYTES", before)


def test_long_fields_are_cut_to_max_field_chars_and_named(spack: Imported) -> None:
    doc = spack.spack_doc()
    name = sorted(doc["packages"])[0]
    doc["packages"][name]["summary"] = "é" * 100_000
    first = doc["packages"][name]["version"][0]
    first["downloads"] = ["https://example.org/" + "x" * 70_000]
    spack.up.set_file(FakeUpstream.SPACK, json.dumps(doc).encode())
    assert spack.update() is None
    row = spack.row()
    errors = row["update_errors"]
    assert row["last_successful_update"] >= row["last_update_attempt"]  # a success
    assert "2 upstream values were longer than 65536 characters (SYNCD_MAX_FIELD_CHARS)" in errors
    assert f"package {name!r} description" in errors
    assert f"package {name!r} version {first['version']!r} metadata" in errors
    with spack.engine.connect() as conn:
        description = conn.execute(select(Package.description).where(Package.name == name))
        assert description.scalar_one() == "é" * 65_536


def test_max_field_chars_is_the_operators_setting(pg_url: str) -> None:
    with FakeUpstream() as up:
        spack = _imported(pg_url, up, max_field_chars=10)
        try:
            row = spack.row()
            assert "longer than 10 characters (SYNCD_MAX_FIELD_CHARS)" in row["update_errors"]
            with spack.engine.connect() as conn:
                lengths = conn.execute(select(Package.description)).scalars().all()
            assert lengths and max(len(d) for d in lengths) == 10
        finally:
            spack.fetcher.close()
            spack.engine.dispose()


def _filler_gzip(doc: dict[str, Any], entries: int) -> bytes:
    """`doc` with `entries` more members `"p": 0` at the end of `packages` (not packages: no
    record, no memory), as a gzip of about 6 bytes per entry packed 1000 to 1."""
    last = {k: v for k, v in doc.items() if k != "packages"} | {"packages": doc["packages"]}
    text = json.dumps(last).encode()
    head, tail = text[:-2], text[-2:]  # "}}": the end of packages, of the document
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(head)]
    block = b',"p":0' * 100_000
    parts.extend(packer.compress(block) for _ in range(entries // 100_000))
    parts += [packer.compress(tail), packer.flush()]
    return b"".join(parts)


def test_parsing_is_bounded_by_the_fetch_deadline_and_not_retried(pg_url: str) -> None:
    """A 20 KB gzip body that takes seconds to parse (3 million entries), with a 0.5 s fetch
    deadline: the download is quick, the parse is stopped at the deadline, permanently.
    Before, parsing had no deadline: a 1 MB gzip holding one 1 GiB string kept a worker busy
    for 20 minutes, then it was retried."""
    with FakeUpstream() as up:
        spack = _imported(pg_url, up, deadline=0.5)
        try:
            before = fingerprint(spack.engine, spack.catalog_id)
            up.set_file(FakeUpstream.SPACK, _filler_gzip(spack.spack_doc(), 3_000_000))
            up.fault(FakeUpstream.SPACK, "gzip_body")  # on the wire as it is: no unpacking
            started = time.monotonic()
            exc = spack.update()
            seconds = time.monotonic() - started
            _assert_refused(spack, exc, "took longer than 0.5 s, the fetch deadline", before)
            assert seconds < 30, f"the parse ran {seconds:.0f} s past its 0.5 s deadline"
        finally:
            spack.fetcher.close()
            spack.engine.dispose()
