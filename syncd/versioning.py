"""Version ordering: Spack's semantics, used for package versions and catalog labels.

Upstream version strings are not comparable as strings ("1.10" > "1.9", "develop" is the
newest Spack version). `spack_version_key` follows Spack's rules (lib/spack/spack/version):

- a version is split into numeric and alphabetic components at `.`, `-`, `_` and at every
  digit/letter boundary ("1.2rc1" -> 1, 2, rc, 1);
- numbers compare numerically; an alphabetic component is older than any number
  ("1.a" < "1.0"); a version is older than its own extensions ("1.2" < "1.2.1" < "1.2a");
- the branch names Spack treats as infinite versions are newer than every number, in the
  order stable < nightly < trunk < head < master < main < develop;
- a trailing alpha/beta/rc pre-release is older than the release ("1.0rc1" < "1.0").

The same key orders EESSI stack versions (2023.06 < 2025.06 < 2025.06-001) and Spack
catalog labels (YYYY.MM.DD), so `version_key` / `compare_versions` are what discover uses
for `update_available`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

# Spack's infinity_versions, oldest first: a later name is a newer version.
INFINITY_VERSIONS = ("stable", "nightly", "trunk", "head", "master", "main", "develop")
_INFINITY_RANK = {name: rank for rank, name in enumerate(INFINITY_VERSIONS)}

_PRERELEASE_RANK = {"alpha": 0, "beta": 1, "rc": 2}
_FINAL = 3

# Component kinds, ordered as Spack orders them: words < numbers < infinity words.
_WORD, _NUMBER, _INFINITY = 0, 1, 2

_FINAL_KEY = (_FINAL,)

_COMPONENT = re.compile(r"[0-9]+|[a-zA-Z]+")

Component = tuple[int, int | str]
VersionKey = tuple[tuple[Component, ...], tuple[int, ...]]


# Cached: components repeat across versions ("1", "2", "rc"), and a package of 100,000
# versions sorts with 100,000 keys alive at once: shared component tuples keep them small.
@functools.lru_cache(maxsize=8192)
def _component(text: str) -> Component:
    if text.isdigit():
        return (_NUMBER, int(text))
    lowered = text.lower()
    if lowered in _INFINITY_RANK:
        return (_INFINITY, _INFINITY_RANK[lowered])
    return (_WORD, text)


def spack_version_key(version: str) -> VersionKey:
    """A sort key that orders version strings as Spack does (larger = newer)."""
    parts = _COMPONENT.findall(version)
    prerelease: tuple[int, ...] = _FINAL_KEY
    # Only a trailing pre-release marker after a release part counts, as in Spack.
    if len(parts) >= 3 and parts[-2].lower() in _PRERELEASE_RANK and parts[-1].isdigit():
        prerelease = (_PRERELEASE_RANK[parts[-2].lower()], int(parts[-1]))
        parts = parts[:-2]
    elif len(parts) >= 2 and parts[-1].lower() in _PRERELEASE_RANK:
        prerelease = (_PRERELEASE_RANK[parts[-1].lower()],)
        parts = parts[:-1]
    return (tuple(_component(p) for p in parts), prerelease)


def version_key(version: str | None) -> tuple[VersionKey, str]:
    """Key for any catalog or package version; the raw string breaks ties deterministically.

    None and "" sort oldest.
    """
    text = (version or "").strip()
    return (spack_version_key(text), text)


def compare_versions(a: str | None, b: str | None) -> int:
    """-1 if a is older than b, 0 if they are the same version, 1 if a is newer."""
    ka = spack_version_key((a or "").strip())
    kb = spack_version_key((b or "").strip())
    return (ka > kb) - (ka < kb)


def is_newer(candidate: str | None, current: str | None) -> bool:
    """Whether `candidate` is a newer version than `current` (discover's update_available)."""
    return compare_versions(candidate, current) > 0


def newest_first(versions: Iterable[str]) -> list[str]:
    """The versions sorted newest first, duplicates kept."""
    return sorted(versions, key=version_key, reverse=True)
