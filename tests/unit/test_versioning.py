"""Version ordering: Spack semantics for package versions, catalog labels for discover."""

from __future__ import annotations

import random

import pytest

from syncd.versioning import compare_versions, is_newer, newest_first, spack_version_key


def sort_spack(versions: list[str]) -> list[str]:
    return sorted(versions, key=spack_version_key)


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.9", "1.10"),
        ("1.2", "1.2.1"),
        ("1.2", "1.2a"),  # a version is older than its own extensions
        ("1.2a", "1.2.1"),  # words are older than numbers
        ("1.a", "1.0"),
        ("1.0rc1", "1.0"),
        ("1.0-alpha", "1.0-beta"),
        ("1.0-beta2", "1.0-rc1"),
        ("1.0rc1", "1.0rc2"),
        ("2.0", "master"),
        ("99999", "develop"),
        ("stable", "trunk"),
        ("master", "main"),
        ("main", "develop"),
        ("2023.06", "2025.06"),
        ("2025.06", "2025.06-001"),
        ("2025.11.26", "2025.11.27"),
        ("2025.09.30", "2025.10.01"),
        ("", "0"),
    ],
)
def test_order(older: str, newer: str) -> None:
    assert spack_version_key(older) < spack_version_key(newer)
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1
    assert is_newer(newer, older)
    assert not is_newer(older, newer)


def test_separators_do_not_matter() -> None:
    assert compare_versions("1.2.3", "1-2_3") == 0
    assert compare_versions("1.02", "1.2") == 0


def test_none_is_oldest() -> None:
    assert is_newer("0.1", None)
    assert compare_versions(None, None) == 0


def test_newest_first_is_a_total_order_independent_of_input_order() -> None:
    versions = [
        "develop",
        "main",
        "master",
        "3.14.5",
        "3.14.0",
        "3.13.13",
        "3.9.1",
        "3.10.0",
        "3.10.0rc1",
        "2.7.18",
        "1.0a",
        "1.0",
        "1.0.0.1",
        "feature-x",
        "20250512.1",
    ]
    expected = newest_first(versions)
    assert expected[:3] == ["develop", "main", "master"]
    assert expected.index("3.10.0") < expected.index("3.10.0rc1") < expected.index("3.9.1")
    shuffled = versions[:]
    random.Random(4).shuffle(shuffled)
    assert newest_first(shuffled) == expected


def test_strings_would_sort_wrongly() -> None:
    # The defect this module exists for: string order puts 1.10 before 1.9.
    assert sorted(["1.9", "1.10"]) == ["1.10", "1.9"]
    assert sort_spack(["1.9", "1.10"]) == ["1.9", "1.10"]
