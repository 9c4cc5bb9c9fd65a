"""Readers of the upstream's loose shapes (modules as strings or objects, cpu_arch paths,
stack names), so records and parsing never branch on them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _module(value: Any) -> dict[str, str]:
    """A module given as an object or as "Name/version"."""
    if isinstance(value, dict):
        full = str(value.get("full_module_name") or "")
        name = str(value.get("module_name") or (full.split("/", 1)[0] if full else ""))
        version = str(value.get("module_version") or (full.split("/", 1)[1] if "/" in full else ""))
        return {
            "full_module_name": full or (f"{name}/{version}" if version else name),
            "module_name": name,
            "module_version": version,
        }
    if isinstance(value, str):
        name, _, version = value.partition("/")
        return {"full_module_name": value, "module_name": name, "module_version": version}
    return {"full_module_name": "", "module_name": "", "module_version": ""}


def entry_module(entry: dict[str, Any]) -> dict[str, str]:
    """The module an entry describes: the `module` object of files since early 2026, or the
    `modulename` string ("ATK/2.38.0-GCCcore-12.3.0") that older files give instead. Without
    it every toolchain build of a version would share one key and collapse into one row."""
    module = _module(entry.get("module"))
    if not module["full_module_name"]:
        module = _module(entry.get("modulename"))
    return module


def same_module(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether two modules read by `_module` are one, whichever form each was given in: an
    object may lack full_module_name, which a string always has."""
    return (a["module_name"], a["module_version"]) == (b["module_name"], b["module_version"])


def eessi_module_version(entry: dict[str, Any]) -> str | None:
    """The EESSI/<version> module among an entry's required_modules."""
    for item in entry.get("required_modules") or []:
        module = _module(item)
        if module["module_name"] == "EESSI" and module["module_version"]:
            return module["module_version"]
    return None


def split_cpu_arch(path: str) -> tuple[str, str]:
    """ "x86_64/amd/zen2" -> ("x86_64", "amd/zen2"); "x86_64" -> ("x86_64", "generic")."""
    family, _, rest = path.partition("/")
    return family, rest or "generic"


def stack_resolver(arch_stacks: Iterable[str]) -> dict[str, str]:
    """Module version -> stack, for module versions that only prefix a stack key.

    The keys are sorted once, here: the keys that start with "<module version>-" are then
    one run of that order, found by bisection, so a lookup costs a logarithm of the keys.
    Scanning every key for each module version instead made a file with 40,000 stacks take
    minutes to parse (quadratic in its entries)."""
    keys = sorted(set(arch_stacks))

    class _Resolver(dict[str, str]):
        def __missing__(self, module_version: str) -> str:
            prefix = module_version + "-"
            first = bisect.bisect_left(keys, prefix)
            # Two keys tell "exactly one" from "several"; the run starts at `first`.
            matches = [k for k in keys[first : first + 2] if k.startswith(prefix)]
            stack = matches[0] if len(matches) == 1 else module_version
            self[module_version] = stack
            return stack

    return _Resolver({k: k for k in keys})
