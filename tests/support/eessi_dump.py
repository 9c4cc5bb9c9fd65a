"""EESSI dump files (the older single-file format Waldur's `load_eessi_catalog --json-file`
reads), made from an API-format software document, so no upstream file is stored here.

    dump = eessi_dump(upstream_data.eessi_software_document(), "2023.06")
    {"targets": ["/cvmfs/software.eessi.io/versions/2023.06/software/linux/x86_64/amd/zen4",
                 ...],
     "software": {"Tool0": {"description", "homepage", "versions": {"1.0.0": {...}}}}}

A version's details are the first installation of that version in the stack, as the older
format wrote them (modulename and required_modules as strings); cpu_arch and gpu_arch are
not per version in a dump: the file's `targets` apply to every version.
"""

from __future__ import annotations

from typing import Any

from tests.support.eessi_old_format import old_entry

CVMFS = "/cvmfs/software.eessi.io/versions"


def _stack(entry: dict[str, Any]) -> str:
    for module in entry.get("required_modules") or []:
        full = module if isinstance(module, str) else module.get("full_module_name", "")
        if full.startswith("EESSI/"):
            return str(full.split("/", 1)[1])
    return ""


def eessi_dump(document: dict[str, Any], stack: str) -> dict[str, Any]:
    """The dump of `stack` from an API-format software document; `document` is left as is."""
    software: dict[str, Any] = {}
    arches: list[str] = []
    for name, entry in document["software"].items():
        versions: dict[str, Any] = {}
        for installation in entry["versions"]:
            if _stack(installation) != stack:
                continue
            for arch in installation.get("cpu_arch") or []:
                if arch not in arches:
                    arches.append(arch)
            details = old_entry(installation)
            for key in ("cpu_arch", "gpu_arch", "description", "homepage"):
                details.pop(key, None)
            versions.setdefault(str(installation["version"]), details)
        if versions:
            software[name] = {
                "description": entry.get("description", ""),
                "homepage": entry.get("homepage", ""),
                "versions": versions,
            }
    return {
        "targets": [f"{CVMFS}/{stack}/software/linux/{arch}" for arch in arches],
        "software": software,
    }


def dump_counts(dump: dict[str, Any]) -> tuple[int, int, int]:
    """(packages, versions, targets) a dump must load as: a target per path per version."""
    versions = sum(len(s["versions"]) for s in dump["software"].values())
    return len(dump["software"]), versions, versions * len(dump["targets"])
