"""adapters.eessi: the EESSI API data files as binary_runtime catalogs, one per stack version.
Guarantees: a snapshot is built from every file; a stack that lists no software is an error.
Does not touch the database or the queue: it only downloads through the Fetcher it is given.

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
  newest first; `dependencies` = the required modules (minus the module itself) as objects
  {full_module_name, module_name, module_version}, as Waldur stores them; `metadata` keys:
    eessi_version     the stack
    module            {full_module_name, module_name, module_version}: the `module` object,
                      or read from the `modulename` string of files from before early 2026
    toolchain         {name, version}   (the API filters on toolchain.name / .version)
    toolchain_families_compatibility   list, e.g. ["2023a_foss"]
    versionsuffix     e.g. "-CUDA-12.1.1" ("" when none)
    required_modules  module objects, in upstream order (older files' "Name/version"
                      strings are split at the first "/")
    license           the entry's own license list
    extensions        [{type, name, version}] bundled in this module (software only)
  and, for extension versions: extension_type (python, r, ...), parent_software
  {name, version, versionsuffix}, parent_module (the parent's full module name);
- a target per cpu_arch path: cpu_architecture, target_name = the family before the first
  "/", target_subtype = the rest (or "generic"), location
  /cvmfs/software.eessi.io/versions/<stack>/software/linux/<path>, gpu_architectures = that
  CPU target's list in gpu_arch, metadata {"full_arch": path, "gpu_arch": the version's
  gpu_arch map} as Waldur's loader stores it.
- extensions (from the extension files) are packages with is_extension=True and
  parent_names = the parent software names present in the stack. An extension version's
  module_version is the parent module's version ("3.24.35-GCCcore-12.2.0" for an extension
  of GTK3/3.24.35-GCCcore-12.2.0), as Waldur's; its full name is metadata parent_module.
  When an extension has the name of a software package (Cython is both), its versions join
  that package, which stays is_extension=False and gains the parent_names; an extension
  entry of the package's own module (hatchling in hatchling/1.18.0-...) is that version's
  build again and adds nothing. An extension listed in several extension files is one
  package. Two builds under one key (textual 0.61.0 in two modules both versioned
  1.0.0-foss-2023a) are both passed on: the sync keeps the first, counts and logs the rest.

Catalog metadata: timestamp, architectures_map (whole map; the API serves cpu_targets from
the stack's entry), gpu_architectures_map, category_details, eessi_version, files read,
api_base_url (the folder of the software file, as Waldur's loader names its source).
The snapshot time (CatalogInfo.snapshot_time) is `timestamp` (None when it is missing or
unreadable; the service then takes the files' Last-Modified).

Files are downloaded to temporary files, then parsed with ijson one software at a time;
only software packages whose name an extension shares are held until the end.
"""

from adapters.eessi.adapter import EessiAdapter
from adapters.eessi.shapes import eessi_module_version, split_cpu_arch, stack_resolver
from adapters.eessi.sources import source_files

__all__ = [
    "EessiAdapter",
    "eessi_module_version",
    "source_files",
    "split_cpu_arch",
    "stack_resolver",
]
