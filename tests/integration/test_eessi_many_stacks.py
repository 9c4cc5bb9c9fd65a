"""An EESSI file with many stack versions parses in time linear in its entries.

Each module version that only prefixes an `architectures_map` key ("2025.06" for
"2025.06-001") used to be resolved by scanning every key: 40,000 keys and stacks took
145 s. The work is counted here as the Python function calls the parse makes (cProfile),
not timed, so a busy machine cannot make the test pass or fail.
"""

from __future__ import annotations

import cProfile
import json
import pstats
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.eessi import EessiAdapter
from adapters.fetch import Fetcher
from tests.support.fake_upstream import FakeUpstream

SOFTWARE = FakeUpstream.EESSI_SOFTWARE


def many_stacks_document(n: int) -> dict[str, Any]:
    """`n` software, one build each, every one in a stack of its own: the even ones name
    "2023.<i>", which prefixes their architectures_map key "2023.<i>-001"; the odd ones name
    "2024.<i>", which is no key at all. So n keys and 1.5 n stack versions."""
    software: dict[str, Any] = {}
    for i in range(n):
        stack = f"2023.{i:06d}" if i % 2 == 0 else f"2024.{i:06d}"
        software[f"Tool{i}"] = {
            "description": f"Tool {i}",
            "versions": [
                {
                    "version": "1.0",
                    "module": f"Tool{i}/1.0-GCCcore-12.3.0",
                    "required_modules": [f"EESSI/{stack}"],
                    "cpu_arch": ["x86_64/generic"],
                }
            ],
        }
    keys = [f"2023.{i:06d}-001" for i in range(n)]
    return {
        "timestamp": "2026-03-18T02:15:12Z",
        "architectures_map": {k: {"x86_64/generic": "x86_64/generic"} for k in keys},
        "software": software,
    }


@pytest.fixture
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(files={}) as server:
        yield server


def _parse(up: FakeUpstream, n: int) -> tuple[int, list[str], list[str]]:
    """Python calls made to download and parse the newest stack of an n-entry file, with the
    stacks discovered and the packages of that stack."""
    up.set_file(SOFTWARE, json.dumps(many_stacks_document(n)).encode())
    settings = up.settings(eessi_extensions=False)
    adapter = EessiAdapter(settings)
    with Fetcher(settings) as fetcher:
        stacks = adapter.discover(fetcher, up.eessi_base)
        profiler = cProfile.Profile()
        profiler.enable()
        snapshot = adapter.fetch_snapshot(fetcher, source=up.eessi_base)
        assert snapshot is not None
        names = [p.name for p in snapshot.packages]
        profiler.disable()
    return pstats.Stats(profiler).total_calls, stacks, names  # type: ignore[attr-defined]


def test_parsing_many_stacks_is_linear_in_the_entries(up: FakeUpstream) -> None:
    small, large = 1_000, 4_000
    small_calls, small_stacks, _ = _parse(up, small)
    large_calls, large_stacks, newest = _parse(up, large)

    # Resolved as before: every key a stack, every prefix its key's, the rest their own.
    assert len(small_stacks) == small + small // 2
    assert len(large_stacks) == large + large // 2
    assert large_stacks[0] == f"2024.{large - 1:06d}"  # Tool3999's own stack, the newest
    assert newest == [f"Tool{large - 1}"]
    assert "2023.000000-001" in large_stacks and "2023.000000" not in large_stacks

    # Four times the entries: about four times the calls when linear, sixteen when each
    # lookup scans every key (the old code made 17 million calls for 4,000 entries).
    ratio = large_calls / small_calls
    assert ratio < 6, f"{small_calls} calls for {small} entries, {large_calls} for {large}"
