"""adapters/json_stream.py on files written by the test: the values it builds, the depth
limit at its boundary, the parse budget, the unpacked size cap of a gzip body. (Long tokens
read in growing pieces: tests/unit/test_spack_adapter.py.)"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.fetch import FetchResult
from adapters.json_stream import MAX_DEPTH, object_members, read_top_level
from syncd.errors import UpstreamError

URL = "https://upstream.test/data.json"


def result_of(tmp_path: Path, body: bytes, **limits: Any) -> FetchResult:
    path = tmp_path / "body"
    path.write_bytes(body)
    return FetchResult(URL, 200, path=path, **limits)


def nested(levels: int) -> Any:
    """`levels` arrays, one inside the other."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


DOC = {
    "timestamp": "2026-03-18",
    "num": 2.5,
    "map": {"a": [1, {"b": None, "c": True}], "d": "é\u0000"},
    "packages": {
        "zlib": {"name": "zlib", "version": [{"version": 2.10, "x": [[], {}]}]},
        "alias": 3,
        "empty": {},
    },
}


def test_values_are_what_json_loads_builds(tmp_path: Path) -> None:
    result = result_of(tmp_path, json.dumps(DOC).encode())
    top = read_top_level(result, URL, "data", skip="packages")
    assert top == {k: v for k, v in DOC.items() if k != "packages"} | {"packages": True}
    members = dict(object_members(result, URL, "data", "packages"))
    assert members == json.loads(json.dumps(DOC["packages"]), parse_float=Decimal)
    names = [name for name, value in object_members(result, URL, "data", "packages", values=False)]
    assert names == ["zlib", "alias", "empty"]


def test_numbers_keep_their_text(tmp_path: Path) -> None:
    result = result_of(tmp_path, b'{"packages": {"p": {"version": 2.10}}}')
    ((_name, value),) = object_members(result, URL, "data", "packages")
    assert str(value["version"]) == "2.10"


@pytest.mark.parametrize("where", ["top", "member", "skipped member"])
def test_nesting_of_max_depth_is_read_and_one_more_is_refused(tmp_path: Path, where: str) -> None:
    def doc(levels: int) -> bytes:
        # The document's own object and `packages` are 2 levels; a package adds one.
        if where == "top":
            return json.dumps({"deep": nested(levels - 1), "packages": {}}).encode()
        return json.dumps({"packages": {"p": nested(levels - 2)}}).encode()

    def read(body: bytes) -> Any:
        result = result_of(tmp_path, body)
        if where == "member":
            return list(object_members(result, URL, "data", "packages"))
        return read_top_level(result, URL, "data", skip="packages")

    read(doc(MAX_DEPTH))
    with pytest.raises(UpstreamError) as caught:
        read(doc(MAX_DEPTH + 1))
    assert not caught.value.transient
    assert "more than 32 levels deep" in caught.value.message
    assert ("'deep'" if where == "top" else "'packages' -> 'p'") in caught.value.message


def test_deep_nesting_costs_no_memory_for_its_paths(tmp_path: Path) -> None:
    """40,000 levels in 80 KB: refused at level 33. (ijson's kvitems held a path string per
    open level: gigabytes for this file.)"""
    body = b'{"packages": {"p": ' + b"[" * 40_000 + b"]" * 40_000 + b"}}"
    with pytest.raises(UpstreamError, match="more than 32 levels deep"):
        list(object_members(result_of(tmp_path, body), URL, "data", "packages"))


def test_a_huge_integer_is_a_permanent_error(tmp_path: Path) -> None:
    result = result_of(tmp_path, b'{"packages": {"p": ' + b"1" * 5000 + b"}}")
    with pytest.raises(UpstreamError) as caught:
        list(object_members(result, URL, "data", "packages"))
    assert not caught.value.transient
    assert "cannot read" in caught.value.message


def test_trailing_garbage_is_refused(tmp_path: Path) -> None:
    result = result_of(tmp_path, b'{"packages": {}} {"more": 1}')
    with pytest.raises(UpstreamError, match="not valid JSON"):
        read_top_level(result, URL, "data", skip="packages")


def test_the_parse_budget_counts_parsing_not_the_caller(tmp_path: Path) -> None:
    body = json.dumps({"packages": {f"p{i}": {"v": i} for i in range(3)}}).encode()
    result = result_of(tmp_path, body, parse_seconds=0.2)
    for _name, _value in object_members(result, URL, "data", "packages"):
        time.sleep(0.15)  # the caller writing records: not parse time
    assert result.parse_spent < 0.2


def test_the_parse_budget_stops_a_long_parse(tmp_path: Path) -> None:
    packer = gzip.compress(b'{"packages": {' + b'"p": 0, ' * 2_000_000 + b'"q": 0}}')
    result = result_of(tmp_path, packer, parse_seconds=0.05)
    with pytest.raises(UpstreamError) as caught:
        read_top_level(result, URL, "data", skip="packages")
    assert not caught.value.transient
    assert "took longer than 0.05 s" in caught.value.message
    assert result.parse_spent < 5


@pytest.mark.parametrize(("limit", "refused"), [(10_000, False), (9_999, True)])
def test_a_gzip_file_is_capped_by_its_unpacked_size(
    tmp_path: Path, limit: int, refused: bool
) -> None:
    plain = json.dumps({"packages": {"p": "x" * 9_000}}).encode().ljust(10_000)
    result = result_of(tmp_path, gzip.compress(plain), max_bytes=limit)
    if not refused:
        assert read_top_level(result, URL, "data", skip="packages") == {"packages": True}
        return
    with pytest.raises(UpstreamError) as caught:
        read_top_level(result, URL, "data", skip="packages")
    assert not caught.value.transient
    assert "unpacks to more than the limit of 9999 bytes" in caught.value.message


def _members(result: FetchResult) -> Iterator[tuple[str, Any]]:
    return object_members(result, URL, "data", "packages")


def test_leaving_early_closes_the_file(tmp_path: Path) -> None:
    body = json.dumps({"packages": {f"p{i}": i for i in range(10)}}).encode()
    result = result_of(tmp_path, body)
    members = _members(result)
    assert next(members) == ("p0", 0)
    members.close()  # type: ignore[attr-defined]
    assert list(_members(result))[-1] == ("p9", 9)
