"""The catalog-name rule (syncd.names) outside the API: `syncd import` as a process and the
queue's message contract. The API's side is tests/integration/api/test_catalog_names.py."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from syncd.db.engine import make_engine
from syncd.errors import InvalidMessageError
from syncd.publish import build_message, decode_message
from tests.integration.worker.fakes import catalog_row, count_catalogs
from tests.integration.worker.test_stale_snapshot import eessi_file, syncd
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_data import EESSI_TIMESTAMP

FULLWIDTH_EESSI = "\uff25\uff25\uff33\uff33\uff29"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(files={FakeUpstream.EESSI_SOFTWARE: eessi_file(3, EESSI_TIMESTAMP)}) as up:
        yield up


def _env(sqlite_url: str, upstream: FakeUpstream) -> dict[str, str]:
    return {
        "SYNCD_DATABASE_URL": sqlite_url,
        "SYNCD_EESSI_SOURCE": upstream.eessi_base,
        "SYNCD_EESSI_EXTENSIONS": "false",
        "SYNCD_ALLOW_PRIVATE_SOURCES": "true",
    }


def test_syncd_import_normalises_and_refuses_names(sqlite_url: str, upstream: FakeUpstream) -> None:
    env = _env(sqlite_url, upstream)
    refused: list[subprocess.CompletedProcess[str]] = [
        syncd(env, "import", "EESSI\u200b", "--version", "2023.06"),
        syncd(env, "import", "EES\u202eSI", "--version", "2023.06"),
    ]
    for result in refused:
        assert result.returncode == 1, result.stdout
        assert "Invisible or bidirectional formatting characters are not allowed" in result.stderr
    assert "(found U+200B)" in refused[0].stderr and "(found U+202E)" in refused[1].stderr

    wide = syncd(env, "import", FULLWIDTH_EESSI, "--version", "2023.06")
    assert wide.returncode == 0, wide.stderr
    spaced = syncd(env, "import", " eessi ", "--version", "2023.06")  # the same catalog again
    assert spaced.returncode == 0, spaced.stderr
    engine = make_engine(sqlite_url)
    try:
        assert count_catalogs(engine) == 1
        assert catalog_row(engine, name="EESSI").version == "2023.06"
    finally:
        engine.dispose()


def _body(name: str) -> bytes:
    fields = build_message("syncd", "import_catalog", {"name": "EESSI"}).asdict()
    fields["args"] = []
    fields["kwargs"]["name"] = name
    return json.dumps(fields).encode()


@pytest.mark.parametrize("name", ["EESSI\u200b", "\u202eEESSI", "EE\u2066SSI", "\ufeffEESSI"])
def test_a_message_naming_a_catalog_with_formatting_characters_is_invalid(name: str) -> None:
    with pytest.raises(InvalidMessageError) as refused:
        decode_message(_body(name), queue_name="syncd")
    assert "kwarg 'name' contains invisible or bidirectional formatting characters" in str(
        refused.value.message
    )
    # Lookalikes that normalise to a registered name are fine: the worker resolves them.
    for fine in (FULLWIDTH_EESSI, " eessi "):
        assert decode_message(_body(fine), queue_name="syncd").kwargs["name"] == fine
