"""EESSI API documents in the format published before early 2026, made from current ones.

Until EESSI/api_data changed its generator (January 2026), a version entry named its module
by a string, `"modulename": "ATK/2.38.0-GCCcore-12.3.0"`, and had no `module` object; its
`required_modules` were strings ("EESSI/2023.06"); a software entry had no `extensions` list;
an extension entry gave `parent_software` {name, version, versionsuffix} and, like every
entry, the parent's `modulename`, but no `module`. Tests compare both epochs of the same
software through this conversion, so no upstream file is stored in the repository.

    old = to_old_format(upstream_data.eessi_software_document())   # or an ext-<type> document
    snap = snapshot(documents(software_doc, old=True), "2023.06")  # the adapter reads them
"""

from __future__ import annotations

import copy
from typing import Any

from adapters.eessi import EessiAdapter
from adapters.fetch import Fetcher
from syncd.config import Settings
from syncd.domain import CatalogSnapshot
from tests.support import upstream_data
from tests.support.fake_upstream import static_transport

SOURCE = "https://upstream.test/eessi/"
SOFTWARE_PATH = "/eessi/eessi_api_metadata_software.json"


def ext_path(ext_type: str) -> str:
    return f"/eessi/eessi_api_metadata_ext-{ext_type}.json"


def _full_name(module: Any) -> str:
    if isinstance(module, str):
        return module
    full = str(module.get("full_module_name") or "")
    return full or f"{module.get('module_name', '')}/{module.get('module_version', '')}"


def old_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One version entry (software or extension) as the older files wrote it."""
    old: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "module":
            old["modulename"] = _full_name(value)
        elif key == "required_modules":
            old[key] = [_full_name(m) for m in value]
        elif key != "extensions":
            old[key] = copy.deepcopy(value)
    return old


def to_old_format(document: dict[str, Any]) -> dict[str, Any]:
    """A software or ext-<type> document in the pre-2026 format; `document` is left as is."""
    old = {k: copy.deepcopy(v) for k, v in document.items() if k != "software"}
    old["software"] = {
        name: {
            **{k: copy.deepcopy(v) for k, v in software.items() if k != "versions"},
            "versions": [old_entry(e) for e in software["versions"]],
        }
        for name, software in document["software"].items()
    }
    return old


def documents(
    software: dict[str, Any], ext_types: tuple[str, ...] = ("python",), *, old: bool = False
) -> dict[str, bytes]:
    """The files of an EESSI source (paths as SOFTWARE_PATH and ext_path(type)), in the
    current format or, with `old`, in the pre-2026 one."""
    convert = to_old_format if old else (lambda doc: doc)
    files = {SOFTWARE_PATH: upstream_data.dumps(convert(software))}
    for ext_type in ext_types:
        ext = upstream_data.eessi_extension_document(software, ext_type)
        files[ext_path(ext_type)] = upstream_data.dumps(convert(ext))
    return files


def snapshot(files: dict[str, bytes], stack: str) -> CatalogSnapshot:
    """The EESSI adapter's snapshot of `stack` from `files`, served in-process."""
    settings = Settings(eessi_source=SOURCE, allow_private_sources=True, fetch_retries=0)
    fetcher = Fetcher(settings, transport=static_transport(files))
    result = EessiAdapter(settings).fetch_snapshot(fetcher, version=stack)
    assert result is not None
    return result
