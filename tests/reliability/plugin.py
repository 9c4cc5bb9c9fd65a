"""A tiny third-party adapter, and `python -m tests.reliability.plugin ROLE ...` to run a
syncd process with it registered.

Some cases need many distinct catalogs whose imports are cheap (500 commands through a
RabbitMQ restart must each leave a visible trace: its own catalog row). No real upstream
offers 500 versions, so the adapter "RelTest" makes a small synthetic catalog for any version
it is asked for, as a plugin would (registered through adapters.base.register_adapter, the
run-time twin of the `syncd.adapters` entry point). Everything else is syncd's own code: the
module ends by calling syncd.cli.main with the same arguments.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import register_adapter
from syncd.config import Settings
from syncd.domain import CatalogInfo, CatalogSnapshot, CatalogType, PackageRecord
from syncd.errors import UpstreamError
from tests.support.records import synthetic_packages

ADAPTER_NAME = "RelTest"


class RelTestAdapter:
    name: ClassVar[str] = ADAPTER_NAME
    catalog_type: ClassVar[CatalogType] = CatalogType.SOURCE_PACKAGE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.packages = int(os.environ.get("RELTEST_PACKAGES", "3"))

    def default_source(self) -> str:
        return "https://reltest.invalid/catalog.json"

    def discover(self, fetcher: Any, source: str | None = None) -> list[str]:
        # It serves any version it is asked for, so it has no list: the API then leaves the
        # version check to the worker (which finds each version in its snapshot).
        raise UpstreamError("RelTest serves any version and lists none", transient=False)

    def fetch_snapshot(
        self,
        fetcher: Any,
        *,
        version: str | None = None,
        source: str | None = None,
        validators: dict[str, Any] | None = None,
    ) -> CatalogSnapshot | None:
        version = version or "v1"
        if validators and validators.get("reltest", {}).get("version") == version:
            return None  # as a conditional GET would: nothing changed since the last sync
        return CatalogSnapshot(
            catalog=CatalogInfo(
                name=ADAPTER_NAME,
                version=version,
                catalog_type=self.catalog_type,
                description=f"synthetic catalog {version} of the reliability suite",
                source_url=source or self.default_source(),
            ),
            packages=_gated(synthetic_packages(self.packages, versions_per_package=2, seed=7)),
            validators={"reltest": {"version": version}},
        )


def _gated(packages: Iterable[PackageRecord]) -> Iterator[PackageRecord]:
    """With RELTEST_GATE=<path>: once the sync starts reading (inside its transaction),
    touch <path>.waiting and hold the stream until <path> exists, so a test can act at
    exactly that point."""
    gate = os.environ.get("RELTEST_GATE")
    if gate:
        Path(gate + ".waiting").touch()
        while not Path(gate).exists():
            time.sleep(0.02)
    yield from packages


def register() -> None:
    register_adapter(ADAPTER_NAME, RelTestAdapter)


def main(argv: list[str]) -> int:
    register()
    from syncd.cli import main as syncd_main

    return syncd_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
