"""EESSI: the EESSI API data files as binary_runtime catalogs, one per stack version.

Source: a base URL (or file:// folder) holding eessi_api_metadata_software.json and the
optional extension files eessi_api_metadata_ext-{python,r,perl,octave,ruby,component}.json
(read when settings.eessi_extensions; a 404 means "absent"). The source may also name a
software file directly (e.g. .../eessi_api_metadata-riscv_software.json); its extension
files are then the siblings named ...-riscv_ext-python.json and so on.

Stack versions: the keys of `architectures_map` plus the EESSI module version of every
entry's `required_modules` (strings "EESSI/2023.06" or objects {module_name: "EESSI",
module_version: "2023.06"}). A module version that is not a key of architectures_map but is
the prefix of exactly one key ("2025.06" for "2025.06-001", as in the RISC-V data) belongs
to that key's stack. `discover` lists them latest first.

Records for one stack:
- a package per software name with at least one version entry in the stack: description,
  homepage, categories, licenses (the `license` key; the version entries' licenses when
  the software-level list is empty);
- a version per entry, keyed (version, module_version) with module_version the module's
  version ("4.2.2-foss-2023a-CUDA-12.1.1"), so toolchain and -CUDA builds stay separate;
  newest first; `dependencies` = full names of the required modules (minus the module
  itself); `metadata` keys:
    eessi_version     the stack
    module            {full_module_name, module_name, module_version}
    toolchain         {name, version}   (the API filters on toolchain.name / .version)
    toolchain_families_compatibility   list, e.g. ["2023a_foss"]
    versionsuffix     e.g. "-CUDA-12.1.1" ("" when none)
    required_modules  list of full module names, in upstream order
    license           the entry's own license list
    extensions        [{type, name, version}] bundled in this module (software only)
  and, for extension versions: extension_type (python, r, ...), parent_software
  {name, version, versionsuffix}, parent_module (the parent's full module name);
- a target per cpu_arch path: cpu_architecture, target_name = the family before the first
  "/", target_subtype = the rest (or "generic"), location
  /cvmfs/software.eessi.io/versions/<stack>/software/linux/<path>, gpu_architectures = that
  CPU target's list in gpu_arch, metadata {"full_arch": path}.
- extensions (from the extension files) are packages with is_extension=True and
  parent_names = the parent software names present in the stack. An extension version's
  module_version is the parent's full module name (one extension version ships in several
  modules). When an extension has the name of a software package (Cython is both), its
  versions join that package, which stays is_extension=False and gains the parent_names;
  an extension listed in several extension files is one package.

Catalog metadata: timestamp, architectures_map (whole map; the API serves cpu_targets from
the stack's entry), gpu_architectures_map, category_details, eessi_version, files read.

Files are downloaded to temporary files, then parsed with ijson one software at a time;
only software packages whose name an extension shares are held until the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import ijson

from adapters.base import read_top_level, schema_error, string_list, upstream_json
from adapters.fetch import Fetcher, FetchResult, child_url
from syncd.config import Settings
from syncd.domain import (
    CatalogInfo,
    CatalogSnapshot,
    CatalogType,
    PackageRecord,
    TargetRecord,
    VersionRecord,
)
from syncd.versioning import newest_first, spack_version_key

SOFTWARE_FILE = "eessi_api_metadata_software.json"
EXTENSION_TYPES = ("python", "r", "perl", "octave", "ruby", "component")
CVMFS_ROOT = "/cvmfs/software.eessi.io/versions"
WHAT = "EESSI API software data"


# --- small readers of upstream shapes -------------------------------------------------------


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
    """Module version -> stack, for module versions that only prefix a stack key."""
    keys = list(arch_stacks)

    class _Resolver(dict[str, str]):
        def __missing__(self, module_version: str) -> str:
            matches = [k for k in keys if k.startswith(module_version + "-")]
            stack = matches[0] if len(matches) == 1 else module_version
            self[module_version] = stack
            return stack

    return _Resolver({k: k for k in keys})


# --- records ----------------------------------------------------------------------------


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
            metadata={"full_arch": path},
            gpu_architectures=string_list(gpu.get(path)),
        )
    return list(targets.values())


def version_record(
    entry: dict[str, Any], stack: str, *, extension_type: str | None = None
) -> VersionRecord:
    module = _module(entry.get("module"))
    required = [_module(m)["full_module_name"] for m in entry.get("required_modules") or []]
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
    }
    version = str(entry.get("version", ""))
    if extension_type is None:
        metadata["extensions"] = [e for e in entry.get("extensions") or [] if isinstance(e, dict)]
        module_version = module["module_version"] or version + metadata["versionsuffix"]
    else:
        parent = _dict(entry.get("parent_software"))
        metadata["extension_type"] = extension_type
        metadata["parent_software"] = parent
        metadata["parent_module"] = module["full_module_name"]
        module_version = module["full_module_name"]
    return VersionRecord(
        version=version,
        module_version=module_version,
        dependencies=[m for m in required if m != module["full_module_name"]],
        metadata=metadata,
        targets=_targets(entry, stack),
    )


def _version_sort_key(v: VersionRecord) -> tuple[Any, ...]:
    return (spack_version_key(v.version), spack_version_key(v.module_version), v.module_version)


@dataclass
class _Builder:
    """Versions of one package gathered across files, deduplicated by key."""

    record: PackageRecord
    keys: set[tuple[str, str]] = field(default_factory=set)

    def add(self, versions: Iterable[VersionRecord], parents: Iterable[str] = ()) -> None:
        for v in versions:
            if v.key not in self.keys:
                self.keys.add(v.key)
                self.record.versions.append(v)
        for name in parents:
            if name not in self.record.parent_names and name != self.record.name:
                self.record.parent_names.append(name)

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
    homepage = software.get("homepage") or entries[0].get("homepage") or None
    builder = _Builder(
        PackageRecord(
            name=name,
            description=str(description).strip(),
            homepage=str(homepage) if homepage else None,
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
    builder.add((version_record(e, stack, extension_type=extension_type) for e in entries), parents)
    return builder


# --- files --------------------------------------------------------------------------------


def source_files(source: str, extensions: bool) -> tuple[str, dict[str, str]]:
    """(software file URL, {extension type: URL}) for a base folder or a software file URL."""
    path = urlsplit(source).path
    if path.endswith((".json", ".json.gz")):
        software = source
        stem = path.rsplit("/", 1)[-1]
        ext_urls = {}
        if "software.json" in stem:
            ext_urls = {
                t: urljoin(source, stem.replace("software.json", f"ext-{t}.json"))
                for t in EXTENSION_TYPES
            }
    else:
        software = child_url(source, SOFTWARE_FILE)
        ext_urls = {
            t: child_url(source, f"eessi_api_metadata_ext-{t}.json") for t in EXTENSION_TYPES
        }
    return software, (ext_urls if extensions else {})


def _software_items(result: FetchResult, url: str) -> Iterator[tuple[str, Any]]:
    with result.open() as stream, upstream_json(url, WHAT):
        yield from ijson.kvitems(stream, "software", use_float=True)


def _names(result: FetchResult, url: str) -> set[str]:
    """The software names of a file, scanned without building the entries."""
    names: set[str] = set()
    with result.open() as stream, upstream_json(url, WHAT):
        for prefix, event, value in ijson.parse(stream):
            if prefix == "software" and event == "map_key":
                names.add(value)
    return names


@dataclass
class _Header:
    top: dict[str, Any]
    stacks: list[str]
    resolve: dict[str, str]


def read_header(result: FetchResult, url: str) -> _Header:
    """Validate a software file and list its stack versions, latest first."""
    with result.open() as stream:
        top = read_top_level(stream, url, WHAT, skip="software")
    if top.get("software") is not True:
        raise schema_error(url, WHAT, "it has no 'software' object")
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
) -> Iterator[PackageRecord]:
    """Stream one stack's packages from downloaded files; closes every result at the end."""
    software_names: set[str] = set()
    try:
        held: dict[str, _Builder] = {}
        name_count: Counter[str] = Counter()
        for result, url in extensions.values():
            name_count.update(_names(result, url))
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
                    held[name].add(builder.record.versions, builder.record.parent_names)
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


# --- the adapter --------------------------------------------------------------------------


class EessiAdapter:
    name: ClassVar[str] = "EESSI"
    catalog_type: ClassVar[CatalogType] = CatalogType.BINARY_RUNTIME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def default_source(self) -> str:
        return self.settings.eessi_source

    def discover(self, fetcher: Fetcher, source: str | None = None) -> list[str]:
        url, _ = source_files(source or self.default_source(), extensions=False)
        result = fetcher.fetch(url)
        try:
            return read_header(result, url).stacks
        finally:
            result.close()

    def fetch_snapshot(
        self,
        fetcher: Fetcher,
        *,
        version: str | None = None,
        source: str | None = None,
        validators: dict[str, Any] | None = None,
    ) -> CatalogSnapshot | None:
        base = source or self.default_source()
        software_url, ext_urls = source_files(base, self.settings.eessi_extensions)
        results = self._download(fetcher, software_url, ext_urls, validators or {})
        if results is None:
            return None
        try:
            software = results[software_url]
            header = read_header(software, software_url)
            stack = version or (header.stacks[0] if header.stacks else None)
            if stack is None or stack not in header.stacks:
                offered = ", ".join(header.stacks) or "none"
                raise schema_error(
                    software_url,
                    WHAT,
                    f"it has no EESSI stack version {stack!r} (it offers: {offered})",
                )
            present = {t: (results[u], u) for t, u in ext_urls.items() if not results[u].absent}
            for ext_result, ext_url in present.values():
                _names(ext_result, ext_url)  # fail on a broken file now, not mid-sync
        except BaseException:
            for r in results.values():
                r.close()
            raise
        top = header.top
        catalog = CatalogInfo(
            name=self.name,
            version=stack,
            catalog_type=self.catalog_type,
            description=(
                f"European Environment for Scientific Software Installations (EESSI) {stack}"
            ),
            source_url=base,
            metadata={
                "eessi_version": stack,
                "timestamp": top.get("timestamp"),
                "architectures_map": top.get("architectures_map") or {},
                "gpu_architectures_map": top.get("gpu_architectures_map") or {},
                "category_details": top.get("category_details") or {},
                "files": [software_url, *(u for _r, u in present.values())],
            },
        )
        return CatalogSnapshot(
            catalog=catalog,
            packages=iter_stack_packages(software, software_url, present, stack, header.resolve),
            validators={url: r.validators for url, r in results.items()},
        )

    def _download(
        self,
        fetcher: Fetcher,
        software_url: str,
        ext_urls: dict[str, str],
        validators: dict[str, Any],
    ) -> dict[str, FetchResult] | None:
        """Every file, or None when none changed since `validators` were taken.

        Files answered "not modified" are fetched again in full when another file changed,
        because a snapshot is always built from every file.
        """
        results: dict[str, FetchResult] = {}
        try:
            results[software_url] = fetcher.fetch(software_url, validators=validators)
            for url in ext_urls.values():
                results[url] = fetcher.fetch(url, validators=validators, optional=True)
            unchanged = all(
                r.not_modified or (r.absent and (validators.get(url) or {}).get("absent"))
                for url, r in results.items()
            )
            if unchanged:
                return None
            for url, r in list(results.items()):
                if r.not_modified:
                    results[url] = fetcher.fetch(url, optional=url != software_url)
            return results
        except BaseException:
            for r in results.values():
                r.close()
            raise
