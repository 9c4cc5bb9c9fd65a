"""What a fetch hands back, apart from how it was fetched: adapters read bodies and
validators from here without depending on the fetcher's retry machinery.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
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

from syncd.errors import UpstreamError

_GZIP_MAGIC = b"\x1f\x8b"
_ABSENT_STATUSES = {404, 410}

Validators = Mapping[str, Any]


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


@dataclass(eq=False)
class FetchResult:
    """One URL's outcome: a body on disk, "not modified", or (optional files) "absent".

    `validators` is this URL's new entry for the catalog's validators dict: ETag and
    Last-Modified, and "hash", the sha256 of the (decoded) body.
    `same_body`: a body arrived, but it hashes as the last sync's did (a new ETag on the same
    content, or a file:// mirror copied again): it is `not_modified` too, and kept.
    `bytes_downloaded` counts bytes received on the wire (after a file:// read: its size).
    """

    url: str
    status: int
    validators: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    bytes_downloaded: int = 0
    final_url: str = ""
    # Limits of reading the body, set by the Fetcher from its settings (None: none):
    # `max_bytes` counts the bytes `open()` hands out, after any gunzip; `parse_seconds` is
    # the parse budget of adapters.json_stream, `parse_spent` what its passes used so far.
    max_bytes: int | None = None
    parse_seconds: float | None = None
    parse_spent: float = 0.0
    same_body: bool = False
    _finalizer: weakref.finalize | None = field(default=None, repr=False)

    @property
    def not_modified(self) -> bool:
        return self.status == 304 or self.same_body

    @property
    def absent(self) -> bool:
        return self.status in _ABSENT_STATUSES

    def own_file(self) -> None:
        """Delete `path` when this result is closed or collected (a temporary download)."""
        if self.path is not None and self._finalizer is None:
            self._finalizer = weakref.finalize(self, _unlink, str(self.path))

    def open(self) -> IO[bytes]:
        """The body as a binary stream, gunzipped when the file itself is gzip (whatever
        the server announced): past `max_bytes` of unpacked data it raises a permanent
        UpstreamError, as the download does past the same number of bytes received."""
        if self.path is None:
            raise ValueError(f"{self.url}: no body (status {self.status})")
        raw = open(self.path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        if raw.read(2) != _GZIP_MAGIC:
            raw.seek(0)
            return raw  # its size was checked when it was received or stat()ed
        raw.seek(0)
        unpacked = gzip.GzipFile(fileobj=raw, mode="rb")
        if self.max_bytes is None:
            return unpacked  # type: ignore[return-value]
        return _Capped(unpacked, raw, self.max_bytes, self.url)  # type: ignore[return-value]

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()


class _Capped(io.RawIOBase):
    """A gunzipped body that refuses to hand out more than `limit` bytes: a small gzip can
    unpack to gigabytes (a 2 MB body held 2 GiB of whitespace)."""

    def __init__(self, unpacked: gzip.GzipFile, raw: IO[bytes], limit: int, url: str) -> None:
        self._unpacked, self._raw, self._limit, self._url = unpacked, raw, limit, url
        self._count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # Never more than one byte past the limit at once, so a refusal costs no more memory
        # than an accepted body.
        room = self._limit - self._count + 1
        data = self._unpacked.read(room if size < 0 else min(size, room))
        self._count += len(data)
        if self._count > self._limit:
            raise UpstreamError(
                f"{self._url} unpacks to more than the limit of {self._limit} bytes (it is "
                "gzip; SYNCD_FETCH_MAX_BYTES counts the unpacked data); refused. If the "
                "upstream really is this large, raise SYNCD_FETCH_MAX_BYTES.",
                transient=False,
                url=self._url,
            )
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._unpacked.close()
            self._raw.close()
        finally:
            super().close()


def child_url(base: str, name: str) -> str:
    """`name` inside the folder `base` (an http(s) base URL or a file:// folder)."""
    return urljoin(base if base.endswith("/") else base + "/", name)


def _kept(previous: dict[str, Any]) -> dict[str, Any]:
    """What a "not modified" carries over from the last sync's entry: its validators and
    its body's hash (still the hash of the body the catalog holds)."""
    return {k: v for k, v in previous.items() if k in ("etag", "last_modified", "hash")}


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
