"""EESSI dump files: the older single-file format Waldur's `load_eessi_catalog --json-file`
reads, `{"targets": ["/cvmfs/software.eessi.io/versions/2023.06/software/linux/x86_64/amd/
zen3", ...], "software": {NAME: {description, homepage, versions: {VERSION: {...}}}}}`.

The file names no stack and no CPU target per version: the stack is the `/versions/<v>/`
part of the target paths (one stack per file), and every version is installed for every
path. Waldur keeps only the family of each path (`/linux/<family>/`), so its zen2 and zen3
paths collapse into one `x86_64` target; here each path is its own target, split as the API
format's `cpu_arch` is (family, then the rest as subtype), so both formats give the same
target rows for the same installation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from adapters.base import schema_error, string_list, version_text
from adapters.eessi.shapes import _dict, _module, split_cpu_arch
from adapters.fetch import FetchResult
from adapters.json_stream import object_members
from syncd.domain import PackageRecord, TargetRecord, VersionRecord
from syncd.versioning import spack_version_key

WHAT = "an EESSI dump file (Waldur's load_eessi_catalog --json-file format)"
_PATH = re.compile(r"/versions/(?P<stack>[^/]+)/.*?/linux/(?P<arch>[^/].*?)/*$")


@dataclass(frozen=True)
class DumpTarget:
    path: str  # as the file gives it, the target's location
    arch: str  # "x86_64/amd/zen3": what follows /linux/


def is_dump(top: dict[str, Any]) -> bool:
    """Whether a document's top level (adapters/json_stream.py read_top_level) has the dump's
    shape: a `targets` list and no `architectures_map` (which the API format always has)."""
    return "targets" in top and "architectures_map" not in top


def dump_targets(top: dict[str, Any], url: str) -> tuple[str, list[DumpTarget]]:
    """(stack, targets) of a dump's `targets` paths; a permanent error naming the first path
    that says no stack or no architecture, or a file that mixes stacks."""
    paths = top.get("targets")
    if not isinstance(paths, list) or not paths:
        raise schema_error(url, WHAT, "'targets' is not a non-empty list of /cvmfs paths")
    stacks: list[str] = []
    targets: dict[str, DumpTarget] = {}
    for path in paths:
        found = _PATH.search(path) if isinstance(path, str) else None
        if found is None:
            raise schema_error(
                url,
                WHAT,
                f"target {str(path)[:120]!r} is not a path like "
                "/cvmfs/software.eessi.io/versions/<version>/software/linux/<arch>",
            )
        if found["stack"] not in stacks:
            stacks.append(found["stack"])
        targets.setdefault(found["arch"], DumpTarget(path=path.rstrip("/"), arch=found["arch"]))
    if len(stacks) > 1:
        raise schema_error(
            url, WHAT, f"its targets name several EESSI versions ({', '.join(stacks)}), not one"
        )
    return stacks[0], list(targets.values())


def _targets(targets: list[DumpTarget]) -> list[TargetRecord]:
    records = []
    for t in targets:
        family, subtype = split_cpu_arch(t.arch)
        records.append(
            TargetRecord(
                target_type="cpu_architecture",
                target_name=family,
                target_subtype=subtype,
                location=t.path,
                metadata={"full_arch": t.arch},
            )
        )
    return records


def _version(number: str, info: Any, stack: str, targets: list[DumpTarget]) -> VersionRecord:
    details = _dict(info)
    required = [_module(m) for m in details.get("required_modules") or []]
    return VersionRecord(
        version=number,
        dependencies=[m for m in required if m["module_name"] != "EESSI"],
        # What the file says of the version, kept as Waldur keeps it, and the stack.
        metadata={**details, "eessi_version": stack},
        targets=_targets(targets),
    )


def _package(name: str, software: Any, stack: str, targets: list[DumpTarget]) -> PackageRecord:
    entry = _dict(software)
    versions = entry.get("versions")
    record = PackageRecord(
        name=name,
        description=str(entry.get("description") or "").strip(),
        homepage=str(entry.get("homepage")) if entry.get("homepage") else None,
        categories=string_list(entry.get("categories")),
        licenses=string_list(entry.get("licenses") or entry.get("license")),
    )
    for number, info in versions.items() if isinstance(versions, dict) else ():
        text = version_text(number)
        if text is None:
            record.left_out.append(f"a build without a version: {name}")
            continue
        record.versions.append(_version(text, info, stack, targets))
    record.versions.sort(key=lambda v: spack_version_key(v.version), reverse=True)
    return record


def dump_catalog_metadata(stack: str, targets: list[DumpTarget], url: str) -> dict[str, Any]:
    """The catalog's metadata: `architectures_map` as the API format gives it, so the
    catalog's cpu_targets read the same whichever format it was loaded from."""
    return {
        "eessi_version": stack,
        "format": "dump",
        "architectures": list(dict.fromkeys(split_cpu_arch(t.arch)[0] for t in targets)),
        "architectures_map": {stack: {t.arch: t.arch for t in targets}},
        "targets": [t.path for t in targets],
        "files": [url],
    }


def iter_dump_packages(
    result: FetchResult, url: str, stack: str, targets: list[DumpTarget]
) -> Iterator[PackageRecord]:
    """Stream a dump's packages, one software at a time; closes `result` at the end."""
    count = 0
    try:
        for name, software in object_members(result, url, WHAT, "software"):
            if not isinstance(software, dict):
                continue
            count += 1
            yield _package(name, software, stack, targets)
    finally:
        result.close()
    if count == 0:
        # An empty dump is a broken file, not a reason to empty the catalog.
        raise schema_error(url, WHAT, "it lists no software")
