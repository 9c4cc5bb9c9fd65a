"""The Adapter protocol and how adapters are found.

An adapter turns one upstream's data into domain records. It knows nothing of the database
or the queue: it gets a `Fetcher` (adapters/fetch/) to download with and returns
`CatalogSnapshot`s. Adapters are registered through the `syncd.adapters` entry-point group;
EESSI and Spack register exactly as a third-party plugin would.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import ijson

from syncd.domain import CatalogSnapshot, CatalogType
from syncd.errors import UpstreamError

if TYPE_CHECKING:
    from adapters.fetch import Fetcher
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
        `snapshot.catalog.version` is upstream's own label of the data; an upstream that
        keeps only its latest data (Spack) returns that whatever `version` asked for, so
        callers compare the two. `snapshot.validators` is `{url: {...}}` for every file.
        `snapshot.catalog.snapshot_time` is when upstream made the data, if the data says
        (`upstream_time` reads an ISO 8601 stamp); None lets the service take the files'
        Last-Modified instead. It guards the catalog against older data (a stale mirror).
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


# --- helpers for adapters (streamed JSON itself: adapters/json_stream.py) ---------------


def string_list(value: Any) -> list[str]:
    """The non-empty strings of a list (or a lone string); anything else is []."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


def upstream_time(value: Any) -> datetime | None:
    """An upstream's own ISO 8601 timestamp ("2026-03-18T02:15:12.970204Z", or Spack's
    zone-less "2026-11-27 05:38:00.052606", which is UTC) as an aware datetime; None when
    absent or unreadable: the timestamp only guards against stale mirrors, it is no reason
    to refuse the data."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def version_text(value: Any) -> str | None:
    """An upstream version value as the text to store, or None when there is none (null,
    missing, empty, or not a scalar): such a build is left out and named, never stored as
    "None". A JSON number keeps its source text (2.10 stays "2.10") only when the parser
    gave it as a Decimal or an int: parse with ijson's default (no `use_float`), since a
    float has already lost the text (2.10 -> 2.1)."""
    if isinstance(value, bool) or value is None:
        return None  # a JSON true/false names no version
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | Decimal | float):
        return str(value)
    return None


def no_version(entry: dict[str, Any], build: str) -> str:
    """What a `PackageRecord.left_out` says of a build whose version `version_text` refused."""
    if "version" not in entry:
        return f"{build}: no version upstream"
    shown = json.dumps(entry["version"], default=str)
    return f"{build}: version {shown[:40]} upstream is not a version"


def schema_error(url: str, what: str, detail: str) -> UpstreamError:
    """A permanent error for valid JSON that is not what the adapter expects."""
    return UpstreamError(
        f"{url} does not look like {what}: {detail}. Check that the source URL points at "
        "the right file (the upstream format may have changed).",
        transient=False,
        url=url,
    )


@contextmanager
def upstream_json(url: str, what: str) -> Iterator[None]:
    """Turn JSON and gzip decoding errors raised inside the block into UpstreamError."""
    try:
        yield
    except ijson.JSONError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
        raise UpstreamError(
            f"{url}: {what} is not valid JSON ({first_line}); the file is truncated or "
            "corrupt upstream. It will be read again at the next update.",
            transient=False,
            url=url,
        ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise UpstreamError(
            f"{url}: {what} is a damaged gzip file ({exc}); the download is truncated or "
            "corrupt upstream.",
            transient=False,
            url=url,
        ) from None
