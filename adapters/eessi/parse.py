"""Streaming the downloaded files (adapters/json_stream.py), one software at a time, so a
full-size upstream is never held in memory; only names an extension shares are kept to the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from adapters.base import schema_error
from adapters.eessi.dump import DumpTarget, dump_targets, is_dump
from adapters.eessi.records import _Builder, package_builder
from adapters.eessi.shapes import eessi_module_version, stack_resolver
from adapters.fetch import FetchResult
from adapters.json_stream import checked_members, object_members, read_top_level
from syncd.domain import PackageRecord
from syncd.versioning import newest_first

WHAT = "EESSI API software data"


def _software_items(result: FetchResult, url: str) -> Iterator[tuple[str, Any]]:
    """The software entries of a file already read whole once (read_top_level or _names,
    which refuse too deep nesting): json_stream.checked_members. Numbers as Decimal: a
    version given as 2.10 keeps its text (version_text)."""
    return checked_members(result, url, WHAT, "software")


def _names(result: FetchResult, url: str) -> set[str]:
    """The software names of a file, scanned without building the entries."""
    return {name for name, _ in object_members(result, url, WHAT, "software", values=False)}


@dataclass
class _Header:
    top: dict[str, Any]
    stacks: list[str]
    resolve: dict[str, str]
    # Set for an EESSI dump file (adapters/eessi/dump.py): its CPU targets' paths.
    dump_targets: list[DumpTarget] | None = None


_NEITHER = (
    "it has no 'software' object, so it is neither the EESSI API format "
    "({architectures_map, software: {NAME: {versions: [...]}}}) nor an EESSI dump file "
    "({targets: [/cvmfs paths], software: {NAME: {versions: {VERSION: {...}}}}})"
)


def read_header(result: FetchResult, url: str) -> _Header:
    """Validate a software file (API format or dump, told apart by shape) and list its
    stack versions, latest first."""
    top = read_top_level(result, url, WHAT, skip="software")
    if top.get("software") is not True:
        raise schema_error(url, WHAT, _NEITHER)
    if is_dump(top):
        stack, targets = dump_targets(top, url)
        return _Header(top=top, stacks=[stack], resolve={}, dump_targets=targets)
    arch_map = top.get("architectures_map")
    if arch_map is not None and not isinstance(arch_map, dict):
        raise schema_error(url, WHAT, "'architectures_map' is not an object")
    resolve = stack_resolver((arch_map or {}).keys())
    stacks = set((arch_map or {}).keys())
    for _name, software in _software_items(result, url):
        if isinstance(software, dict):
            for entry in software.get("versions") or []:
                if isinstance(entry, dict) and (mv := eessi_module_version(entry)):
                    stacks.add(resolve[mv])
    return _Header(top=top, stacks=newest_first(stacks), resolve=resolve)


def iter_stack_packages(
    software: FetchResult,
    software_url: str,
    extensions: dict[str, tuple[FetchResult, str]],
    stack: str,
    resolve: dict[str, str],
    extension_names: list[set[str]] | None = None,
) -> Iterator[PackageRecord]:
    """Stream one stack's packages from downloaded files (the software file read by
    read_header first); closes every result at the end. `extension_names`: each extension
    file's software names (_names), when already read."""
    software_names: set[str] = set()
    try:
        held: dict[str, _Builder] = {}
        name_count: Counter[str] = Counter()
        if extension_names is None:
            extension_names = [_names(result, url) for result, url in extensions.values()]
        for names in extension_names:
            name_count.update(names)
        for name, entry in _software_items(software, software_url):
            builder = package_builder(name, entry, stack, resolve)
            if builder is None:
                continue
            software_names.add(name)
            if name in name_count:
                held[name] = builder
            else:
                yield builder.finish()
        for ext_type, (result, url) in extensions.items():
            for name, entry in _software_items(result, url):
                builder = package_builder(
                    name,
                    entry,
                    stack,
                    resolve,
                    extension_type=ext_type,
                    known_parents=software_names,
                )
                if builder is None:
                    continue
                if name in held:
                    held[name].merge(builder)
                elif name_count[name] > 1:
                    held[name] = builder
                else:
                    yield builder.finish()
        for builder in held.values():
            yield builder.finish()
    finally:
        software.close()
        for result, _url in extensions.values():
            result.close()
    if not software_names:
        # An empty stack is a broken publication, not a reason to empty the catalog.
        raise schema_error(software_url, WHAT, f"it lists no software for EESSI {stack}")
