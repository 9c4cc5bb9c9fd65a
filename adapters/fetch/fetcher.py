"""The Fetcher: one shared httpx client per process, so timeouts, retries, size limits and
conditional requests are applied the same way for every adapter.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

import httpx

from adapters.fetch.deadline import deadline_at
from adapters.fetch.errors import _status_error, bad_location, deadline_error, transport_error
from adapters.fetch.pinning import AddressRefused
from adapters.fetch.policy import check_source_allowed, parse_source
from adapters.fetch.results import (
    _ABSENT_STATUSES,
    FetchResult,
    Validators,
    _file_hash,
    _kept,
    _validators_of,
)
from adapters.fetch.transport import PinnedTransport, environment_proxy_mounts
from syncd.config import Settings
from syncd.errors import PermanentError, UpstreamError

MAX_REDIRECTS = 5
# A Retry-After longer than this is not slept through inside one attempt: the error goes
# back (transient, with retry_after) and the worker's own backoff takes over.
DEFAULT_MAX_RETRY_AFTER = 30.0
# Without an overall deadline a server that drips one byte per read-timeout would hold a
# worker forever; the deadline of one fetch (connect, headers, body, retries) is this many
# read timeouts.
DEADLINE_READ_TIMEOUTS = 10
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_USER_AGENT = "syncd (HPC software catalog sync; +https://github.com/)"


class Fetcher:
    """Shared downloader; `bytes_downloaded` totals every byte it received (for metrics)."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.BaseTransport | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        deadline: float | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self.max_retry_after = max_retry_after
        self.deadline = (
            deadline
            if deadline is not None
            else settings.fetch_read_timeout * DEADLINE_READ_TIMEOUTS
        )
        timeout = httpx.Timeout(
            connect=settings.fetch_connect_timeout,
            read=settings.fetch_read_timeout,
            write=settings.fetch_read_timeout,
            pool=settings.fetch_connect_timeout,
        )
        # Without a transport of the caller's (tests pass mocks), connections are pinned to
        # the addresses the SSRF policy vetted; proxies from the environment still apply.
        self._client = httpx.Client(
            transport=transport if transport is not None else PinnedTransport(settings),
            mounts=environment_proxy_mounts() if transport is None else None,
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "gzip"},
            trust_env=transport is None,
        )
        self._lock = threading.Lock()
        self._local = threading.local()
        self._bytes = 0
        self._requests = 0
        self._tmpdir = settings.cache_dir or None
        if self._tmpdir:
            Path(self._tmpdir).mkdir(parents=True, exist_ok=True)

    # counters -----------------------------------------------------------------------------

    @property
    def bytes_downloaded(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def requests_made(self) -> int:
        with self._lock:
            return self._requests

    @property
    def thread_bytes_downloaded(self) -> int:
        """Bytes this thread downloaded: a per-command figure when threads share a fetcher."""
        return int(getattr(self._local, "bytes", 0))

    @property
    def thread_same_hashes(self) -> int:
        """Fetches of this thread found unchanged by content hash (the body's, or the one
        upstream published) rather than by a 304: the service names how it knew."""
        return int(getattr(self._local, "same_hashes", 0))

    def _same_hash(self) -> None:
        self._local.same_hashes = getattr(self._local, "same_hashes", 0) + 1

    def _count(self, nbytes: int, requests: int = 0) -> None:
        self._local.bytes = getattr(self._local, "bytes", 0) + nbytes
        with self._lock:
            self._bytes += nbytes
            self._requests += requests

    # lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the one public operation -------------------------------------------------------------

    def fetch(
        self,
        url: str,
        *,
        validators: Validators | None = None,
        optional: bool = False,
        published_hash: str | None = None,
        max_bytes: int | None = None,
    ) -> FetchResult:
        """Download `url` (conditionally, when `validators` has an entry for it).

        Returns a result whose status is 200 (body in `path`), 304 (not modified, no body)
        or, when `optional`, 404/410 (absent). Raises UpstreamError otherwise. A 200 whose
        body hashes (sha256, taken while it streams) as the entry's "hash" is
        `same_body`: not modified either, though its body is kept for a caller that needs
        it anyway. `published_hash`: the body's sha256 as upstream publishes it (EESSI's
        hashes.json); when it is the entry's "hash", nothing is requested (a 304).
        `max_bytes`: a lower size limit than SYNCD_FETCH_MAX_BYTES for this one body.
        """
        try:
            check_source_allowed(url, self.settings)
        except PermanentError as exc:
            raise UpstreamError(exc.message, transient=False, url=url) from None
        previous = dict((validators or {}).get(url) or {})
        if published_hash is not None and published_hash == previous.get("hash"):
            self._same_hash()
            return FetchResult(url, 304, _kept(previous), final_url=url)
        limit = min(max_bytes or self.settings.fetch_max_bytes, self.settings.fetch_max_bytes)
        fetch = self._fetch_file if urlsplit(url).scheme.lower() == "file" else self._fetch_http
        result = fetch(url, previous, optional, limit)
        if result.status == 200 and previous.get("hash") == result.validators.get("hash"):
            result.same_body = True
            self._same_hash()
        # Reading is bounded like receiving: the byte cap after gunzip, the deadline for parsing.
        result.max_bytes, result.parse_seconds = limit, self.deadline
        return result

    # file:// -------------------------------------------------------------------------------

    def _fetch_file(
        self, url: str, previous: dict[str, Any], optional: bool, limit: int
    ) -> FetchResult:
        path = Path(url2pathname(urlsplit(url).path))
        try:
            st = path.stat()
        except FileNotFoundError:
            if optional:
                return FetchResult(url, 404, {"absent": True}, final_url=url)
            raise UpstreamError(
                f"{url}: file not found; check the source path and that the mirror is mounted.",
                transient=False,
                url=url,
            ) from None
        except OSError as exc:
            raise UpstreamError(
                f"{url}: cannot read the file ({exc.strerror}); check its permissions.",
                transient=True,
                url=url,
            ) from None
        if not path.is_file():
            raise UpstreamError(f"{url}: not a regular file.", transient=False, url=url)
        if st.st_size > limit:
            raise self._too_large(url, st.st_size, limit)
        new: dict[str, Any] = {
            "etag": f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
            "last_modified": formatdate(st.st_mtime, usegmt=True),
        }
        if previous.get("etag") == new["etag"]:
            return FetchResult(url, 304, {**_kept(previous), **new}, final_url=url)
        # A mirror copied again has a new mtime: only the content tells whether it changed.
        # This is the one extra pass over a local file (a changed one is parsed again).
        new["hash"] = _file_hash(path)
        self._count(st.st_size)
        return FetchResult(url, 200, new, path=path, bytes_downloaded=st.st_size, final_url=url)

    # http(s) -------------------------------------------------------------------------------

    def _fetch_http(
        self, url: str, previous: dict[str, Any], optional: bool, limit: int
    ) -> FetchResult:
        attempts = 1 + max(0, self.settings.fetch_retries)
        started = time.monotonic()
        # One deadline for the whole fetch, retries included: every connect, header and body
        # read waits at most until it (deadline.py), so no drip or trickle outlasts it.
        with deadline_at(started + self.deadline):
            for attempt in range(1, attempts + 1):
                try:
                    return self._attempt(url, previous, optional, started, limit)
                except UpstreamError as exc:
                    if not exc.transient or attempt == attempts:
                        if exc.transient and attempts > 1:
                            exc.message = f"{exc.message} (gave up after {attempts} attempts)"
                            exc.args = (exc.message,)
                        raise
                    wait = self._backoff(attempt, exc.retry_after)
                    if wait is None or time.monotonic() + wait - started >= self.deadline:
                        raise
                    self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt; None = give up now (wait too long)."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return float(min(0.5 * 2 ** (attempt - 1), self.max_retry_after))

    def _attempt(
        self, url: str, previous: dict[str, Any], optional: bool, started: float, limit: int
    ) -> FetchResult:
        headers = {}
        if previous.get("etag"):
            headers["If-None-Match"] = str(previous["etag"])
        if previous.get("last_modified"):
            headers["If-Modified-Since"] = str(previous["last_modified"])
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                with self._client.stream("GET", current, headers=headers) as response:
                    self._count(0, requests=1)
                    if response.status_code in _REDIRECT_STATUSES:
                        self._count(response.num_bytes_downloaded)
                        current = self._redirect_target(url, current, response)
                        continue
                    return self._receive(url, current, response, previous, optional, started, limit)
            except httpx.HTTPError as exc:
                raise transport_error(url, current, exc, self.settings, self.deadline) from None
            except AddressRefused as exc:
                # The name resolved differently when connecting than when it was checked
                # (DNS rebinding, or a short TTL): refused like the check would, not retried.
                refused = f"Source {current!r} is refused: {exc.message}"
                if current != url:
                    refused = f"{url} redirected to a refused location. {refused}"
                raise UpstreamError(refused, transient=False, url=url) from None
        raise UpstreamError(
            f"{url}: more than {MAX_REDIRECTS} redirects; check the source URL.",
            transient=False,
            url=url,
        )

    def _redirect_target(self, url: str, current: str, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise UpstreamError(
                f"{current} answered HTTP {response.status_code} without a Location header.",
                transient=False,
                url=url,
                status=response.status_code,
            )
        try:
            target = urljoin(current, location)
            host = parse_source(target).hostname or ""
        except (ValueError, PermanentError) as exc:
            raise bad_location(url, exc) from None
        origin = urlsplit(url).hostname or ""
        allowed = {origin.lower(), *(h.lower() for h in self.settings.allowed_redirect_hosts)}
        if host.lower() not in allowed:
            raise UpstreamError(
                f"{url} redirected to {target}, but {host or 'that URL'} is not an allowed "
                "host; if it is trusted, add it to SYNCD_ALLOWED_REDIRECT_HOSTS, or point "
                "the source at it directly.",
                transient=False,
                url=url,
                status=response.status_code,
            )
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise UpstreamError(
                f"{url} redirected to {target}: only http and https redirects are followed.",
                transient=False,
                url=url,
            )
        try:
            check_source_allowed(target, self.settings)
        except PermanentError as exc:
            raise UpstreamError(
                f"{url} redirected to a refused location. {exc.message}",
                transient=False,
                url=url,
            ) from None
        return target

    def _receive(
        self,
        url: str,
        current: str,
        response: httpx.Response,
        previous: dict[str, Any],
        optional: bool,
        started: float,
        limit: int,
    ) -> FetchResult:
        status = response.status_code
        if status == 304:
            self._count(response.num_bytes_downloaded)
            # A 304 may omit validators; the ones we sent are still the current ones.
            kept = _kept(previous)
            kept.update(_validators_of(response))
            return FetchResult(url, 304, kept, final_url=current)
        if optional and status in _ABSENT_STATUSES:
            self._count(response.num_bytes_downloaded)
            return FetchResult(url, status, {"absent": True}, final_url=current)
        if status >= 400:
            raise _status_error(url, response)
        if status != 200:
            raise UpstreamError(
                f"{url} answered HTTP {status} {response.reason_phrase}, not 200 with a body.",
                transient=False,
                url=url,
                status=status,
            )
        declared = response.headers.get("content-length")
        if (
            declared
            and declared.isdigit()
            and not response.headers.get("content-encoding")
            and int(declared) > limit
        ):
            raise self._too_large(url, int(declared), limit)
        return self._download(url, current, response, started, limit)

    def _download(
        self, url: str, current: str, response: httpx.Response, started: float, limit: int
    ) -> FetchResult:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept past this function
            prefix="syncd-fetch-", suffix=".body", dir=self._tmpdir, delete=False
        )
        result = FetchResult(url, 200, _validators_of(response), path=Path(handle.name))
        result.own_file()
        received = 0
        counted = 0
        digest = hashlib.sha256()  # of the decoded body, as upstream hashes its files
        result.final_url = current
        try:
            with handle:
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    wire = response.num_bytes_downloaded
                    self._count(wire - counted)
                    counted = wire
                    if received > limit:
                        raise self._too_large(url, received, limit, partial=True)
                    if time.monotonic() - started > self.deadline:
                        raise deadline_error(url, current, self.deadline, received)
                    handle.write(chunk)
                    digest.update(chunk)
        except BaseException:
            result.close()
            raise
        result.bytes_downloaded = counted
        result.validators["hash"] = digest.hexdigest()
        return result

    # error helpers --------------------------------------------------------------------------

    def _too_large(
        self, url: str, size: int, limit: int, *, partial: bool = False
    ) -> UpstreamError:
        what = f"more than {size - 1} bytes arrived" if partial else f"it is {size} bytes"
        return UpstreamError(
            f"{url} is larger than the limit of {limit} bytes "
            f"({what}); download aborted. If the upstream really is this large, raise "
            "SYNCD_FETCH_MAX_BYTES.",
            transient=False,
            url=url,
        )
