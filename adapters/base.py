"""The Adapter protocol and how adapters are found.

An adapter turns one upstream's data into domain records. It knows nothing of the database
or the queue: it gets a `Fetcher` (adapters/fetcher.py) to download with and returns
`CatalogSnapshot`s. Adapters are registered through the `syncd.adapters` entry-point group;
EESSI and Spack register exactly as a third-party plugin would.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from syncd.domain import CatalogSnapshot, CatalogType

if TYPE_CHECKING:
    from adapters.fetcher import Fetcher
    from syncd.config import Settings

ENTRY_POINT_GROUP = "syncd.adapters"


@runtime_checkable
class Adapter(Protocol):
    """One upstream catalog source.

    `source` is where the data lives (http(s):// URL or file:// path); `None` means the
    adapter's configured default. Validators are the conditional-request state kept per
    catalog (ETag / Last-Modified per URL) from the last successful sync.
    """

    name: ClassVar[str]
    catalog_type: ClassVar[CatalogType]

    def default_source(self) -> str:
        """Where the data lives unless a catalog says otherwise."""
        ...

    def discover(self, fetcher: Fetcher, source: str | None = None) -> list[str]:
        """The catalog versions upstream offers now, latest first."""
        ...

    def fetch_snapshot(
        self,
        fetcher: Fetcher,
        *,
        version: str | None = None,
        source: str | None = None,
        validators: dict[str, Any] | None = None,
    ) -> CatalogSnapshot | None:
        """The snapshot of one catalog version (None = latest).

        Returns None when every conditional request answered "not modified": upstream is
        unchanged since `validators` were taken, so there is nothing to download or parse.
        Raises UpstreamError (transient or permanent) when the data cannot be had.
        """
        ...


AdapterFactory = Any  # a class or callable taking Settings and returning an Adapter


def load_adapters(settings: Settings) -> dict[str, Adapter]:
    """Every registered adapter, by name, built with `settings`."""
    found: dict[str, Adapter] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        factory = ep.load()
        adapter = factory(settings)
        found[adapter.name] = adapter
    for name, factory in _extra_factories.items():
        found[name] = factory(settings)
    return found


# Adapters registered at run time (tests, embedding programs) next to the entry points.
_extra_factories: dict[str, AdapterFactory] = {}


def register_adapter(name: str, factory: AdapterFactory) -> None:
    _extra_factories[name] = factory


def unregister_adapter(name: str) -> None:
    _extra_factories.pop(name, None)
