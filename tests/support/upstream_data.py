"""Small synthetic EESSI and Spack upstream data in the real schemas, deterministic.

For tests that need small data, and for the fake upstream when ../shared/upstream is absent.
The shapes follow ../shared/upstream/README.md: EESSI's eessi_api_metadata_software.json and
ext-<type>.json, Spack's repology.json (alias keys, branch versions, odd download lists and
the windows / detectable / build-tools categories included).

    software = eessi_software_document()             # two stacks, 2023.06 and 2025.06
    ext = eessi_extension_document(software, "python")
    spack = spack_document()
    counts = eessi_counts(software)                  # {stack: (packages, versions)}
    atk = eessi_document_with_atk()                  # + one version with three toolchain builds
"""

from __future__ import annotations

import json
from typing import Any

EESSI_STACKS = ("2023.06", "2025.06")
EESSI_TIMESTAMP = "2026-03-18T02:15:12.970204Z"
SPACK_LAST_UPDATE = "2026-11-27 05:38:00.052606"
CPU_TARGETS = (
    "aarch64/generic",
    "aarch64/neoverse_v1",
    "x86_64/generic",
    "x86_64/amd/zen4",
    "x86_64/intel/icelake",
)
GPU_TARGETS = ("nvidia/cc80", "nvidia/cc90")
_TOOLCHAINS = {
    "2023.06": [("GCCcore", "12.3.0", "2023a_foss"), ("foss", "2023b", "2023b_foss")],
    "2025.06": [("GCCcore", "14.2.0", "2025a_foss"), ("foss", "2025b", "2025b_foss")],
}


def _module(full: str) -> dict[str, str]:
    name, _, version = full.partition("/")
    return {"full_module_name": full, "module_name": name, "module_version": version}


def _installation(
    name: str, version: str, stack: str, index: int, *, cuda: bool, string_modules: bool
) -> dict[str, Any]:
    tc_name, tc_version, family = _TOOLCHAINS[stack][index % 2]
    suffix = "-CUDA-12.1.1" if cuda else ""
    module = f"{name}/{version}-{tc_name}-{tc_version}{suffix}"
    required = [f"EESSI/{stack}", f"{tc_name}/{tc_version}", module]
    entry: dict[str, Any] = {
        "version": version,
        "versionsuffix": suffix,
        "description": f"{name} does useful thing number {index}.",
        "homepage": f"https://example.org/{name.lower()}",
        "license": ["MIT"] if index % 3 == 0 else [],
        "image": "",
        "categories": [],
        "identifier": "",
        "toolchain": {"name": tc_name, "version": tc_version},
        "toolchain_families_compatibility": [family],
        "module": _module(module),
        "required_modules": required if string_modules else [_module(m) for m in required],
        "cpu_arch": list(CPU_TARGETS),
        "gpu_arch": {cpu: list(GPU_TARGETS) for cpu in CPU_TARGETS[:3]} if cuda else {},
        "extensions": [],
    }
    return entry


def eessi_software_document(
    n_software: int = 6, stacks: tuple[str, ...] = EESSI_STACKS
) -> dict[str, Any]:
    """An eessi_api_metadata_software.json with `n_software` entries over `stacks`.

    Software i has i % 3 + 1 installations per stack; software 1 has a CUDA build next to
    its CPU build of the same version; software 2 lists required_modules as strings (the old
    schema); software 0 bundles two Python extensions (Tool0 bundles "numpy-lite" and
    "Tool1", the latter also a software name).
    """
    software: dict[str, Any] = {}
    for i in range(n_software):
        name = f"Tool{i}"
        versions: list[dict[str, Any]] = []
        for stack in stacks:
            for j in range(i % 3 + 1):
                versions.append(
                    _installation(
                        name, f"{i + 1}.{j}.0", stack, j, cuda=False, string_modules=i == 2
                    )
                )
            if i == 1:
                versions.append(
                    _installation(name, f"{i + 1}.0.0", stack, 0, cuda=True, string_modules=False)
                )
        if i == 0:
            for entry in versions:
                entry["extensions"] = [
                    {"type": "python", "name": "numpy-lite", "version": "1.0"},
                    {"type": "python", "name": "Tool1", "version": "9.9"},
                ]
        software[name] = {
            "versions": versions,
            "description": f"{name}: a synthetic EESSI software package.",
            "homepage": f"https://example.org/{name.lower()}",
            "license": ["GPL-3.0-only"] if i % 2 else [],
            "image": "",
            "categories": [],
            "identifier": "",
        }
    return {
        "timestamp": EESSI_TIMESTAMP,
        "architectures_map": {s: {cpu: cpu for cpu in CPU_TARGETS} for s in stacks},
        "gpu_architectures_map": {},
        "category_details": {},
        "software": software,
    }


def eessi_toolchain_builds(
    name: str, version: str, stack: str, gcccore_versions: tuple[str, ...]
) -> dict[str, Any]:
    """A software entry whose one upstream version is built with several GCCcore toolchains,
    as ATK 2.38.0 is in EESSI 2023.06 (GCCcore 12.2.0, 12.3.0 and 13.2.0)."""
    versions = []
    for tc_version in gcccore_versions:
        entry = _installation(name, version, stack, 0, cuda=False, string_modules=False)
        module = f"{name}/{version}-GCCcore-{tc_version}"
        required = [f"EESSI/{stack}", f"GCCcore/{tc_version}", module]
        entry.update(
            toolchain={"name": "GCCcore", "version": tc_version},
            module=_module(module),
            required_modules=[_module(m) for m in required],
        )
        versions.append(entry)
    return {
        "versions": versions,
        "description": f"{name}: one version, {len(versions)} toolchain builds.",
        "homepage": f"https://example.org/{name.lower()}",
        "license": [],
        "image": "",
        "categories": [],
        "identifier": "",
    }


ATK_TOOLCHAINS = ("12.2.0", "12.3.0", "13.2.0")


def eessi_document_with_atk() -> dict[str, Any]:
    """eessi_software_document() plus ATK 2.38.0 built with three GCCcore toolchains in 2023.06."""
    doc = eessi_software_document()
    doc["software"]["ATK"] = eessi_toolchain_builds("ATK", "2.38.0", "2023.06", ATK_TOOLCHAINS)
    return doc


def eessi_one_key_two_builds_document() -> dict[str, Any]:
    """ParentA and ParentB, both 1.0.0-GCCcore-12.3.0 in 2023.06, both bundling the Python
    package textual 0.61.0 (as AITW-microstructures and AITW-viscosity do): two builds of
    textual under one key (version, module_version)."""
    doc = eessi_software_document(n_software=0)
    for name in ("ParentA", "ParentB"):
        doc["software"][name] = eessi_toolchain_builds(name, "1.0.0", "2023.06", ("12.3.0",))
        for entry in doc["software"][name]["versions"]:
            entry["extensions"] = [{"type": "python", "name": "textual", "version": "0.61.0"}]
    return doc


def eessi_extension_document(software_doc: dict[str, Any], ext_type: str) -> dict[str, Any]:
    """The ext-<type> file derived from the extensions the software entries list."""
    exts: dict[str, Any] = {}
    for parent_name, parent in software_doc["software"].items():
        for entry in parent["versions"]:
            for ext in entry.get("extensions", []):
                if ext["type"] != ext_type:
                    continue
                item = {k: v for k, v in entry.items() if k not in ("extensions", "version")}
                item.update(
                    version=ext["version"],
                    versionsuffix="",
                    parent_software={
                        "name": parent_name,
                        "version": entry["version"],
                        "versionsuffix": entry["versionsuffix"],
                    },
                    description=f"{ext['name']} is a Python package included in the "
                    f"software module for {parent_name}",
                )
                target = exts.setdefault(
                    ext["name"],
                    {
                        "versions": [],
                        "description": f"{ext['name']} is included in {{'{parent_name}'}}",
                        "homepage": "",
                        "license": [],
                        "image": "",
                        "categories": [],
                        "identifier": "",
                    },
                )
                target["versions"].append(item)
    return {
        "timestamp": software_doc["timestamp"],
        "architectures_map": software_doc["architectures_map"],
        "gpu_architectures_map": {},
        "category_details": {},
        "software": exts,
    }


def _stack_of(entry: dict[str, Any]) -> str:
    first = entry["required_modules"][0]
    return str(
        first["module_version"] if isinstance(first, dict) else _module(first)["module_version"]
    )


def eessi_counts(software_doc: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """{stack: (software packages, installations)} of a software document."""
    counts: dict[str, tuple[int, int]] = {}
    for stack in software_doc["architectures_map"]:
        packages = versions = 0
        for software in software_doc["software"].values():
            n = sum(1 for e in software["versions"] if _stack_of(e) == stack)
            packages += n > 0
            versions += n
        counts[stack] = (packages, versions)
    return counts


def spack_document(n_packages: int = 12, last_update: str = SPACK_LAST_UPDATE) -> dict[str, Any]:
    """A repology.json with `n_packages` real packages plus one alias key.

    Package i has i % 4 + 1 numbered versions written oldest first (as upstream does for
    some); every third package also has a `develop` branch version; package 1's first
    version has downloads [[]] and package 2's a nested list; categories cycle through
    windows, detectable and build-tools.
    """
    packages: dict[str, Any] = {}
    category_cycle: tuple[list[str], ...] = (
        ["windows", "build-tools"],
        ["detectable"],
        [],
        ["build-tools"],
    )
    for i in range(n_packages):
        name = f"pkg-{i:03d}"
        versions: list[dict[str, Any]] = []
        for j in range(i % 4 + 1):
            url = f"https://example.org/{name}/{name}-{j}.{i}.{10 - j}.tar.gz"
            versions.append({"downloads": [url], "version": f"{j}.{i}.{10 - j}"})
        if i == 1:
            versions[0]["downloads"] = [[]]
        if i == 2:
            versions[0]["downloads"] = [[versions[0]["downloads"][0]], "https://mirror.example/x"]
        if i % 3 == 0:
            versions.append(
                {
                    "branch": "develop",
                    "repositories": [
                        {"branch": "develop", "type": "git", "url": f"https://git.example/{name}"}
                    ],
                    "version": "develop",
                }
            )
        packages[name] = {
            "alias": [],
            "categories": category_cycle[i % 4],
            "dependencies": [f"pkg-{k:03d}" for k in range(i) if k % 5 == 0][:3],
            "downloads": [],
            "homepages": [f"https://example.org/{name}"],
            "licenses": ["Apache-2.0"] if i % 2 else [],
            "maintainers": ["someone"] if i % 5 == 0 else [],
            "name": name,
            "patches": [],
            "summary": f"Synthetic package {i}.\n",
            "version": versions,
        }
    packages["pkg-alias"] = dict(
        packages["pkg-000"], alias=[{"alias_for": "pkg-000", "name": "pkg-alias"}]
    )
    return {
        "last_update": last_update,
        "num_packages": n_packages,
        "packages": dict(sorted(packages.items())),
        "repository_name": "spack",
    }


def spack_counts(doc: dict[str, Any]) -> tuple[int, int]:
    """(real packages, their versions) of a repology document: alias keys excluded."""
    real = [p for k, p in doc["packages"].items() if p.get("name") == k]
    return len(real), sum(len(p.get("version") or []) for p in real)


def dumps(doc: dict[str, Any]) -> bytes:
    """Compact JSON bytes, as upstream writes them."""
    return json.dumps(doc, separators=(",", ":")).encode()
