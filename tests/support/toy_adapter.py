"""A tiny third adapter, registered the way a third-party plugin is: by an entry point.

    from tests.support.toy_adapter import ToyAdapter, registered_toy_adapter

    with registered_toy_adapter(tmp_path):          # writes a *.dist-info onto sys.path
        adapters = load_adapters(settings)          # adapters["Toy"] is a ToyAdapter

The Toy upstream is a JSON document (by default built in, `TOY_DOCUMENT`; or any
http(s)/file URL given as `source`, fetched with the shared Fetcher):
    {"version": "1.0", "packages": {"name": {"description": ..., "versions": ["1.0", ...]}}}
Every version gets one build_variant/default target.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import ENTRY_POINT_GROUP
from adapters.fetch import Fetcher
from syncd.config import Settings
from syncd.domain import (
    CatalogInfo,
    CatalogSnapshot,
    CatalogType,
    PackageRecord,
    TargetRecord,
    VersionRecord,
)
from syncd.versioning import newest_first

TOY_DOCUMENT: dict[str, Any] = {
    "version": "1.0",
    "packages": {
        "hammer": {"description": "Hits nails.", "versions": ["1.0", "1.10", "1.9"]},
        "saw": {"description": "Cuts wood.", "versions": ["0.1"]},
    },
}
BUILTIN_SOURCE = "builtin:toy"


class ToyAdapter:
    name: ClassVar[str] = "Toy"
    catalog_type: ClassVar[CatalogType] = CatalogType.PACKAGE_MANAGER

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def default_source(self) -> str:
        return BUILTIN_SOURCE

    def _document(
        self, fetcher: Fetcher, source: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        url = source or self.default_source()
        if url == BUILTIN_SOURCE:
            return TOY_DOCUMENT, {}
        return self._fetch(fetcher, url, {})

    def _fetch(
        self, fetcher: Fetcher, url: str, validators: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        result = fetcher.fetch(url, validators=validators)
        if result.not_modified:
            return None
        try:
            with result.open() as stream:
                return json.load(stream), {url: result.validators}
        finally:
            result.close()

    def discover(self, fetcher: Fetcher, source: str | None = None) -> list[str]:
        found = self._document(fetcher, source)
        return [str(found[0]["version"])] if found else []

    def fetch_snapshot(
        self,
        fetcher: Fetcher,
        *,
        version: str | None = None,
        source: str | None = None,
        validators: dict[str, Any] | None = None,
    ) -> CatalogSnapshot | None:
        url = source or self.default_source()
        new_validators: dict[str, Any] = {}
        if url == BUILTIN_SOURCE:
            doc = TOY_DOCUMENT
        else:
            found = self._fetch(fetcher, url, validators or {})
            if found is None:
                return None
            doc, new_validators = found
        packages = [
            PackageRecord(
                name=name,
                description=info.get("description", ""),
                versions=[
                    VersionRecord(
                        version=v,
                        targets=[
                            TargetRecord("build_variant", "default", location=f"toy://{name}/{v}")
                        ],
                    )
                    for v in newest_first(info.get("versions", []))
                ],
            )
            for name, info in sorted(doc["packages"].items())
        ]
        catalog = CatalogInfo(
            name=self.name,
            version=str(doc["version"]),
            catalog_type=self.catalog_type,
            description="Toy catalog for tests",
            source_url=url,
        )
        return CatalogSnapshot(catalog=catalog, packages=packages, validators=new_validators)


@contextmanager
def registered_toy_adapter(directory: Path, name: str = "Toy") -> Iterator[Path]:
    """Register ToyAdapter under the `syncd.adapters` entry point group for the block.

    Writes `<directory>/syncd_toy_plugin-0.1.dist-info/` (METADATA, entry_points.txt), puts
    `directory` on sys.path and clears importlib's caches, so importlib.metadata (and hence
    load_adapters) sees an installed distribution; undone at the end.
    """
    dist = directory / "syncd_toy_plugin-0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: syncd-toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{name} = tests.support.toy_adapter:ToyAdapter\n"
    )
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    try:
        yield dist
    finally:
        sys.path.remove(str(directory))
        importlib.invalidate_caches()
