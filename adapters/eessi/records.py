"""Upstream entries as domain records: the one place that decides what a package, a
version and a target of an EESSI stack look like in the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adapters.base import no_version, string_list, version_text
from adapters.eessi.shapes import (
    _dict,
    _module,
    eessi_module_version,
    entry_module,
    same_module,
    split_cpu_arch,
)
from syncd.domain import PackageRecord, TargetRecord, VersionRecord
from syncd.versioning import spack_version_key

CVMFS_ROOT = "/cvmfs/software.eessi.io/versions"


def _targets(entry: dict[str, Any], stack: str) -> list[TargetRecord]:
    gpu = _dict(entry.get("gpu_arch"))
    targets: dict[str, TargetRecord] = {}
    for path in string_list(entry.get("cpu_arch")):
        if path in targets:
            continue
        family, subtype = split_cpu_arch(path)
        targets[path] = TargetRecord(
            target_type="cpu_architecture",
            target_name=family,
            target_subtype=subtype,
            location=f"{CVMFS_ROOT}/{stack}/software/linux/{path}",
            # Waldur's loader: the hardware path and the version's whole gpu_arch map.
            metadata={"full_arch": path, "gpu_arch": gpu},
            gpu_architectures=string_list(gpu.get(path)),
        )
    return list(targets.values())


def version_record(
    entry: dict[str, Any], stack: str, *, extension_type: str | None = None
) -> VersionRecord | None:
    """The entry's version record; None when it has no usable version (version_text)."""
    version = version_text(entry.get("version"))
    if version is None:
        return None
    module = entry_module(entry)
    # Objects as Waldur stores them, also when an older file gives "Name/version" strings.
    required = [_module(m) for m in entry.get("required_modules") or []]
    toolchain = _dict(entry.get("toolchain"))
    metadata: dict[str, Any] = {
        "eessi_version": stack,
        "module": module,
        "toolchain": {"name": toolchain.get("name", ""), "version": toolchain.get("version", "")},
        "toolchain_families_compatibility": string_list(
            entry.get("toolchain_families_compatibility")
        ),
        "versionsuffix": entry.get("versionsuffix") or "",
        "required_modules": required,
        "license": string_list(entry.get("license")),
        # As Waldur's loader stores them ("" and [] when upstream leaves them out).
        "image": entry.get("image") if isinstance(entry.get("image"), str) else "",
        "categories": string_list(entry.get("categories")),
        "identifier": entry.get("identifier") if isinstance(entry.get("identifier"), str) else "",
    }
    if extension_type is None:
        metadata["extensions"] = [e for e in entry.get("extensions") or [] if isinstance(e, dict)]
        module_version = module["module_version"] or version + metadata["versionsuffix"]
    else:
        # An extension entry's module is its parent's: the key takes the parent module's
        # version part, as Waldur's does; the full name stays in parent_module.
        parent = _dict(entry.get("parent_software"))
        metadata["extension_type"] = extension_type
        metadata["parent_software"] = parent
        metadata["parent_module"] = module["full_module_name"]
        module_version = module["module_version"]
    return VersionRecord(
        version=version,
        module_version=module_version,
        dependencies=[m for m in required if not same_module(m, module)],
        metadata=metadata,
        targets=_targets(entry, stack),
    )


def _version_sort_key(v: VersionRecord) -> tuple[Any, ...]:
    return (spack_version_key(v.version), spack_version_key(v.module_version), v.module_version)


@dataclass
class _Builder:
    """Versions of one package gathered across files.

    `builds` maps each version key to the module of its first version. The same key from the
    same module again (a module listing itself as an extension, hatchling in
    hatchling/1.18.0-GCCcore-12.3.0) is one build seen twice and is left out here. The same key
    from another module is a real collapse: it goes on, and the sync keeps the first, counts
    the rest in its stats and logs them, so no build is lost without a trace.
    """

    record: PackageRecord
    builds: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def add(self, versions: Iterable[VersionRecord], parents: Iterable[str] = ()) -> None:
        for v in versions:
            module = v.metadata["module"]
            taken = self.builds.get(v.key)
            if taken is None:
                self.builds[v.key] = module
            elif same_module(taken, module):
                continue
            self.record.versions.append(v)
        for name in parents:
            if name not in self.record.parent_names and name != self.record.name:
                self.record.parent_names.append(name)

    def merge(self, other: _Builder) -> None:
        """Take in the same package's builder from another file."""
        self.add(other.record.versions, other.record.parent_names)
        self.record.left_out.extend(other.record.left_out)

    def finish(self) -> PackageRecord:
        self.record.versions.sort(key=_version_sort_key, reverse=True)
        return self.record


def package_builder(
    name: str,
    software: Any,
    stack: str,
    resolve: dict[str, str],
    *,
    extension_type: str | None = None,
    known_parents: set[str] | None = None,
) -> _Builder | None:
    """A package's builder for one stack; None when it has no version entry in the stack."""
    if not isinstance(software, dict):
        return None
    entries = [
        e
        for e in software.get("versions") or []
        if isinstance(e, dict) and resolve[eessi_module_version(e) or ""] == stack
    ]
    if not entries:
        return None
    licenses = string_list(software.get("license")) or sorted(
        {lic for e in entries for lic in string_list(e.get("license"))}
    )
    description = software.get("description") or entries[0].get("description") or ""
    # Upstream's own text, an empty string included (Waldur stores it so); None only when
    # neither the software nor its first build names one.
    homepage = software.get("homepage")
    if not isinstance(homepage, str):
        homepage = entries[0].get("homepage")
    if not isinstance(homepage, str):
        homepage = None
    builder = _Builder(
        PackageRecord(
            name=name,
            description=str(description).strip(),
            homepage=homepage,
            categories=string_list(software.get("categories")),
            licenses=licenses,
            is_extension=extension_type is not None,
        )
    )
    parents: list[str] = []
    if extension_type is not None:
        for e in entries:
            parent = e.get("parent_software")
            pname = parent.get("name") if isinstance(parent, dict) else None
            if pname and (known_parents is None or pname in known_parents):
                parents.append(pname)
    versions = []
    for e in entries:
        record = version_record(e, stack, extension_type=extension_type)
        if record is None:
            build = entry_module(e)["full_module_name"] or "a build"
            builder.record.left_out.append(no_version(e, build))
        else:
            versions.append(record)
    builder.add(versions, parents)
    return builder
