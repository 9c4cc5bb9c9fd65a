"""EESSI's hashes.json: the sha256 upstream publishes for each data file, read before any of
them, so a file whose hash is the last sync's is not downloaded at all.

The file sits beside the data files (EESSI/api_data scripts/calculate_hashes.py writes it
into the published folder): `{"<file name>": {"hash": "<sha256 hex>", "timestamp": "..."}}`,
one entry per file of the folder. It is a hint, never a reason to fail: missing (404), not
answering, larger than HASHES_MAX_BYTES, not JSON, or of another shape (an entry of one of
our files without a 64-digit hex hash), it is left aside, the refresh falls back to
conditional requests and one log line says why.

What it cannot catch: a hashes.json left behind by its data (stale) that still states the
hash of what the catalog holds while the file itself changed. Every other disagreement
shows in a file that is requested (its body, or the stored body a 304 vouches for, hashes
otherwise than published): then the adapter stops trusting hashes.json for this refresh
and asks again for the files it took on its word (`distrusted`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

from adapters.fetch import Fetcher
from syncd.errors import UpstreamError
from syncd.logging import get_logger

log = get_logger(__name__)

HASHES_FILE = "hashes.json"
# The real file lists some twenty files in about 3 KB; anything near this is not it.
HASHES_MAX_BYTES = 1 << 20
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def hashes_url(software_url: str) -> str:
    """hashes.json in the folder of the software file."""
    return urljoin(software_url, HASHES_FILE)


def file_name(url: str) -> str:
    """The name a data file has in hashes.json: the last part of its URL's path."""
    return urlsplit(url).path.rsplit("/", 1)[-1]


def published_hashes(fetcher: Fetcher, software_url: str, urls: Iterable[str]) -> dict[str, str]:
    """{url: published sha256} of the `urls` that hashes.json lists; {} when it is unusable
    (logged once, with the reason). A URL it does not list is not in the answer."""
    source = hashes_url(software_url)
    try:
        found = _hashes_of(_read(fetcher, source), urls)
        if software_url not in found:
            raise _Unusable(f"it does not list {file_name(software_url)}")
        return found
    except _Unusable as exc:
        log.info("hashes_json_unusable", url=source, reason=str(exc))
        return {}


class _Unusable(Exception):
    """Why hashes.json cannot be used this time."""


def _read(fetcher: Fetcher, url: str) -> Any:
    try:
        result = fetcher.fetch(url, optional=True, max_bytes=HASHES_MAX_BYTES)
    except UpstreamError as exc:
        raise _Unusable(exc.message) from None
    try:
        if result.absent:
            raise _Unusable(f"not found ({result.status}): the upstream publishes none")
        with result.open() as stream:
            data = stream.read(HASHES_MAX_BYTES + 1)
    except UpstreamError as exc:
        raise _Unusable(exc.message) from None
    finally:
        result.close()
    if len(data) > HASHES_MAX_BYTES:
        raise _Unusable(f"larger than {HASHES_MAX_BYTES} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting
        raise _Unusable(f"not valid JSON ({type(exc).__name__})") from None


def _hashes_of(document: Any, urls: Iterable[str]) -> dict[str, str]:
    if not isinstance(document, dict):
        raise _Unusable("not a JSON object of files")
    found: dict[str, str] = {}
    for url in urls:
        name = file_name(url)
        if name not in document:
            continue
        entry = document[name]
        value = entry.get("hash") if isinstance(entry, dict) else None
        if not isinstance(value, str) or not _SHA256.fullmatch(value):
            raise _Unusable(f"the entry of {name} has no sha256 hash")
        found[url] = value.lower()
    return found


def distrusted(published: dict[str, str], known: dict[str, str | None]) -> list[str]:
    """The files whose content is known (`{url: hash}`: a body's, or the stored one a 304
    vouches for) and is not what hashes.json says: one such file and the list is wrong for
    the others too (stale, or made of other files)."""
    return [
        url
        for url, body_hash in known.items()
        if url in published and body_hash is not None and body_hash != published[url]
    ]
