"""What a fetch hands back, apart from how it was fetched: adapters read bodies and
validators from here without depending on the fetcher's retry machinery.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import httpx

_GZIP_MAGIC = b"\x1f\x8b"
_ABSENT_STATUSES = {404, 410}

Validators = Mapping[str, Any]


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


@dataclass(eq=False)
class FetchResult:
    """One URL's outcome: a body on disk, "not modified", or (optional files) "absent".

    `validators` is this URL's new entry for the catalog's validators dict.
    `bytes_downloaded` counts bytes received on the wire (after a file:// read: its size).
    """

    url: str
    status: int
    validators: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    bytes_downloaded: int = 0
    final_url: str = ""
    _finalizer: weakref.finalize | None = field(default=None, repr=False)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def absent(self) -> bool:
        return self.status in _ABSENT_STATUSES

    def own_file(self) -> None:
        """Delete `path` when this result is closed or collected (a temporary download)."""
        if self.path is not None and self._finalizer is None:
            self._finalizer = weakref.finalize(self, _unlink, str(self.path))

    def open(self) -> IO[bytes]:
        """The body as a binary stream, gunzipped when the file itself is gzip."""
        if self.path is None:
            raise ValueError(f"{self.url}: no body (status {self.status})")
        raw = open(self.path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        if raw.read(2) == _GZIP_MAGIC:
            raw.seek(0)
            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        raw.seek(0)
        return raw

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()


def child_url(base: str, name: str) -> str:
    """`name` inside the folder `base` (an http(s) base URL or a file:// folder)."""
    return urljoin(base if base.endswith("/") else base + "/", name)


def _validators_of(response: httpx.Response) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if response.headers.get("etag"):
        found["etag"] = response.headers["etag"]
    if response.headers.get("last-modified"):
        found["last_modified"] = response.headers["last-modified"]
    return found


def newest_last_modified(validators: Mapping[str, Any]) -> datetime | None:
    """The latest Last-Modified (HTTP header, or a file's mtime) among the files of a
    snapshot's validators `{url: {"last_modified": ...}}`; None when no file has one."""
    found: list[datetime] = []
    for entry in validators.values():
        value = entry.get("last_modified") if isinstance(entry, Mapping) else None
        if not isinstance(value, str):
            continue
        try:
            stamp = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue  # a malformed header only costs the staleness check
        found.append(stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp)
    return max(found, default=None)
