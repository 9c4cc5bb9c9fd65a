"""The one HTTP fetcher every adapter downloads with.

A `Fetcher` wraps one `httpx.Client` (thread-safe; one per process) and adds what upstream
catalogs need: connect/read timeouts and an overall deadline, bounded retries of transient
failures (connect errors, timeouts, dropped connections, 429 and 5xx, honouring a capped
Retry-After), gzip, a maximum body size, redirects only to the same host or to
`settings.allowed_redirect_hosts`, conditional requests, `file://` sources for air-gapped
mirrors, and the SSRF guard `check_source_allowed`.

The guard is applied twice: `check_source_allowed` judges the URL up front (the API uses it
for `source_url` too), and every connection goes through `PinnedTransport`/`PinnedBackend`,
which resolve the host once more, keep only the addresses the same policy
(`address_allowed`) accepts and connect to exactly those IPs. A name that answers a public
address to the check and an internal one to the connection (DNS rebinding), directly or as
a redirect target, is refused with the same permanent error. With
SYNCD_ALLOW_PRIVATE_SOURCES every address passes, but connections are still pinned. Proxies
from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) are honoured; through a
proxy the proxy resolves the upstream, so there syncd's up-front check is the only check on
its side and the proxy's own egress rules must keep it out of internal networks.

Bodies are streamed into a temporary file (in `settings.cache_dir` when set) and parsed from
there, so a large upstream is never one bytes object in memory. The file is deleted when the
`FetchResult` is closed or garbage-collected.

Validators are kept per catalog as a dict keyed by URL:
`{url: {"etag": ..., "last_modified": ...}}`; an optional file that was missing is
remembered as `{url: {"absent": True}}`. `fetch(url, validators=...)` looks its own URL up
in that dict and returns the new entry in `FetchResult.validators`.

Every failure is a `syncd.errors.UpstreamError` whose `transient` flag drives the retry
decision and whose message says which URL, what happened and what an operator can do.
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import os
import socket
import ssl
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

import httpcore
import httpx

from syncd.config import Settings
from syncd.errors import PermanentError, UpstreamError

ALLOWED_SCHEMES = ("http", "https", "file")
MAX_REDIRECTS = 5
# A Retry-After longer than this is not slept through inside one attempt: the error goes
# back (transient, with retry_after) and the worker's own backoff takes over.
DEFAULT_MAX_RETRY_AFTER = 30.0
# Without an overall deadline a server that drips one byte per read-timeout would hold a
# worker forever; the deadline is this many read timeouts.
DEADLINE_READ_TIMEOUTS = 10
_GZIP_MAGIC = b"\x1f\x8b"
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_ABSENT_STATUSES = {404, 410}
_USER_AGENT = "syncd (HPC software catalog sync; +https://github.com/)"

Validators = Mapping[str, Any]


# --- SSRF guard ---------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def address_allowed(address: IPAddress, settings: Settings) -> bool:
    """The SSRF policy for one address: global unicast only, unless the operator allows
    private sources. The one definition both the URL check (`check_source_allowed`) and
    the connection (`PinnedBackend`) apply."""
    return settings.allow_private_sources or _is_public(address)


def _refusal(host: str, addresses: str) -> str:
    return (
        f"{host} resolves to {addresses}, a loopback, private or link-local address; an "
        "operator can allow internal upstreams with SYNCD_ALLOW_PRIVATE_SOURCES=true."
    )


def _resolve(host: str, port: int | None = None) -> list[tuple[IPAddress, str]]:
    """Each address `host` stands for, as (parsed address, text to connect to), in the
    resolver's order without duplicates; an IP literal is itself. Raises OSError when the
    name does not resolve."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [(literal, host)]
    found: dict[str, IPAddress] = {}
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        text = str(info[4][0])  # an IPv6 link-local answer may carry a %scope
        with contextlib.suppress(ValueError):
            found.setdefault(text, ipaddress.ip_address(text.split("%", 1)[0]))
    return [(address, text) for text, address in found.items()]


def _addresses(host: str) -> list[IPAddress]:
    try:
        return [address for address, _text in _resolve(host)]
    except OSError:
        # Unresolvable now: nothing to judge; the fetch itself fails with a clear error.
        return []


def check_source_allowed(url: str, settings: Settings) -> None:
    """Refuse a source URL the worker must not fetch; raises PermanentError saying why.

    Only http, https and file URLs; file:// only with SYNCD_ALLOW_FILE_SOURCES; hosts that
    resolve to loopback, private, link-local or other non-global addresses only with
    SYNCD_ALLOW_PRIVATE_SOURCES (so a catalog's source_url cannot turn the worker into a
    proxy into the internal network). The HTTP API validates `source_url` with this too.

    This check resolves the name once; the fetcher's connections resolve it again, so they
    go through `PinnedBackend`, which applies the same policy to the addresses it actually
    connects to (a DNS-rebinding name cannot answer differently to the two).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise PermanentError(
            f"Source {url!r} is refused: only http, https and file URLs are allowed "
            f"(got {scheme + ':' if scheme else 'no scheme'})."
        )
    if scheme == "file":
        if not settings.allow_file_sources:
            raise PermanentError(
                f"Source {url!r} is refused: file:// sources are disabled; an operator can "
                "allow local mirrors with SYNCD_ALLOW_FILE_SOURCES=true."
            )
        if parts.netloc not in ("", "localhost"):
            raise PermanentError(
                f"Source {url!r} is refused: a file:// URL must name a local path "
                "(file:///path/to/file), not a host."
            )
        return
    host = parts.hostname
    if not host:
        raise PermanentError(f"Source {url!r} is refused: the URL has no host.")
    if settings.allow_private_sources:
        return
    for address in _addresses(host):
        if not address_allowed(address, settings):
            raise PermanentError(f"Source {url!r} is refused: {_refusal(host, str(address))}")


# --- connection pinning -------------------------------------------------------------------


class AddressRefused(PermanentError):
    """At connect time, no address of `host` passed the SSRF policy; nothing was connected."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self.host = host
        self.addresses = addresses  # as the resolver wrote them
        super().__init__(_refusal(host, f"{', '.join(addresses)} when connecting"))


class PinnedBackend(httpcore.NetworkBackend):
    """An httpcore network backend that resolves the host itself, keeps only the addresses
    `address_allowed` accepts and connects to those IPs (in the resolver's order), so the
    address connected to is the address checked. No allowed address: `AddressRefused`
    (a PermanentError, which passes through httpx unchanged). With
    SYNCD_ALLOW_PRIVATE_SOURCES every address is allowed, but the connection still goes to
    the address resolved here.

    TLS is unaffected: httpcore hands `start_tls` the origin's host name as server_hostname
    (httpcore/_sync/connection.py), so certificates are verified against the name, not the
    IP connected to.
    """

    def __init__(self, settings: Settings, inner: httpcore.NetworkBackend | None = None) -> None:
        self._settings = settings
        self._inner = inner if inner is not None else httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            resolved = _resolve(host, port)
        except OSError as exc:  # the message httpcore's own create_connection would give
            raise httpcore.ConnectError(str(exc)) from exc
        allowed = [text for address, text in resolved if address_allowed(address, self._settings)]
        if not allowed:
            raise AddressRefused(host, [text for _address, text in resolved])
        failure: Exception | None = None
        for text in allowed:
            try:
                return self._inner.connect_tcp(
                    text,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # like socket.create_connection: try the next address
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - the fetcher never uses a unix socket
        return self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# httpx internals: httpx 0.28's HTTPTransport takes no network backend and a Client given
# its own transport reads no proxy variables. Both gaps are bridged here and only here; the
# tests in tests/unit/test_fetch_pinning.py fail if httpx changes either.


class PinnedTransport(httpx.HTTPTransport):
    """httpx's HTTPTransport whose connections go through a `PinnedBackend`."""

    def __init__(
        self,
        settings: Settings,
        *,
        trust_env: bool = True,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        super().__init__(trust_env=trust_env)
        # The connection pool HTTPTransport sends through is the private `_pool`; replace it
        # by an identical one (httpx's defaults) that has the pinned backend.
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError(
                "httpx.HTTPTransport no longer keeps its connection pool in `_pool`; "
                "adapters/fetcher.py PinnedTransport must be adapted to this httpx version."
            )
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(settings, inner),
        )


def environment_proxy_mounts() -> dict[str, httpx.BaseTransport | None]:
    """httpx's own reading of HTTP_PROXY/HTTPS_PROXY/ALL_PROXY/NO_PROXY, as Client mounts:
    a proxy transport per proxied pattern, None (= the pinned default transport) for each
    NO_PROXY entry.

    Through a proxy there is nothing to pin: syncd connects to the proxy (the operator's
    choice, often on an internal network, so not subject to the policy) and the proxy
    resolves the upstream name itself. `check_source_allowed` still refuses names that
    resolve privately for syncd, but the proxy's own egress rules must keep it out of
    internal networks.
    """
    from httpx._utils import get_environment_proxies  # private: see the note above

    return {
        pattern: None if proxy is None else httpx.HTTPTransport(proxy=proxy)
        for pattern, proxy in get_environment_proxies().items()
    }


# --- results ------------------------------------------------------------------------------


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


# --- the fetcher --------------------------------------------------------------------------


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
        self, url: str, *, validators: Validators | None = None, optional: bool = False
    ) -> FetchResult:
        """Download `url` (conditionally, when `validators` has an entry for it).

        Returns a result whose status is 200 (body in `path`), 304 (not modified, no body)
        or, when `optional`, 404/410 (absent). Raises UpstreamError otherwise.
        """
        try:
            check_source_allowed(url, self.settings)
        except PermanentError as exc:
            raise UpstreamError(exc.message, transient=False, url=url) from None
        previous = dict((validators or {}).get(url) or {})
        if urlsplit(url).scheme.lower() == "file":
            return self._fetch_file(url, previous, optional)
        return self._fetch_http(url, previous, optional)

    # file:// -------------------------------------------------------------------------------

    def _fetch_file(self, url: str, previous: dict[str, Any], optional: bool) -> FetchResult:
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
        if st.st_size > self.settings.fetch_max_bytes:
            raise self._too_large(url, st.st_size)
        new = {
            "etag": f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
            "last_modified": formatdate(st.st_mtime, usegmt=True),
        }
        if previous.get("etag") == new["etag"]:
            return FetchResult(url, 304, new, final_url=url)
        self._count(st.st_size)
        return FetchResult(url, 200, new, path=path, bytes_downloaded=st.st_size, final_url=url)

    # http(s) -------------------------------------------------------------------------------

    def _fetch_http(self, url: str, previous: dict[str, Any], optional: bool) -> FetchResult:
        attempts = 1 + max(0, self.settings.fetch_retries)
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(url, previous, optional)
            except UpstreamError as exc:
                if not exc.transient or attempt == attempts:
                    if exc.transient and attempts > 1:
                        exc.message = f"{exc.message} (gave up after {attempts} attempts)"
                        exc.args = (exc.message,)
                    raise
                wait = self._backoff(attempt, exc.retry_after)
                if wait is None:
                    raise
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt; None = give up now (wait too long)."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return float(min(0.5 * 2 ** (attempt - 1), self.max_retry_after))

    def _attempt(self, url: str, previous: dict[str, Any], optional: bool) -> FetchResult:
        headers = {}
        if previous.get("etag"):
            headers["If-None-Match"] = str(previous["etag"])
        if previous.get("last_modified"):
            headers["If-Modified-Since"] = str(previous["last_modified"])
        current = url
        started = time.monotonic()
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                with self._client.stream("GET", current, headers=headers) as response:
                    self._count(0, requests=1)
                    if response.status_code in _REDIRECT_STATUSES:
                        self._count(response.num_bytes_downloaded)
                        current = self._redirect_target(url, current, response)
                        continue
                    return self._receive(url, current, response, previous, optional, started)
            except httpx.HTTPError as exc:
                raise self._transport_error(url, current, exc) from None
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
        target = urljoin(current, location)
        origin = urlsplit(url).hostname or ""
        host = urlsplit(target).hostname or ""
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
    ) -> FetchResult:
        status = response.status_code
        if status == 304:
            self._count(response.num_bytes_downloaded)
            # A 304 may omit validators; the ones we sent are still the current ones.
            kept = {k: v for k, v in previous.items() if k in ("etag", "last_modified")}
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
            and int(declared) > self.settings.fetch_max_bytes
        ):
            raise self._too_large(url, int(declared))
        return self._download(url, current, response, started)

    def _download(
        self, url: str, current: str, response: httpx.Response, started: float
    ) -> FetchResult:
        limit = self.settings.fetch_max_bytes
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept past this function
            prefix="syncd-fetch-", suffix=".body", dir=self._tmpdir, delete=False
        )
        result = FetchResult(url, 200, _validators_of(response), path=Path(handle.name))
        result.own_file()
        received = 0
        counted = 0
        result.final_url = current
        try:
            with handle:
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    wire = response.num_bytes_downloaded
                    self._count(wire - counted)
                    counted = wire
                    if received > limit:
                        raise self._too_large(url, received, partial=True)
                    if time.monotonic() - started > self.deadline:
                        raise UpstreamError(
                            f"{url}: the download took longer than {self.deadline:g} s "
                            f"({received} bytes so far); the upstream is too slow. "
                            "Raise SYNCD_FETCH_READ_TIMEOUT if it is always this slow.",
                            transient=True,
                            url=url,
                        )
                    handle.write(chunk)
        except BaseException:
            result.close()
            raise
        result.bytes_downloaded = counted
        return result

    # error helpers --------------------------------------------------------------------------

    def _too_large(self, url: str, size: int, *, partial: bool = False) -> UpstreamError:
        what = f"more than {size - 1} bytes arrived" if partial else f"it is {size} bytes"
        return UpstreamError(
            f"{url} is larger than the limit of {self.settings.fetch_max_bytes} bytes "
            f"({what}); download aborted. If the upstream really is this large, raise "
            "SYNCD_FETCH_MAX_BYTES.",
            transient=False,
            url=url,
        )

    def _transport_error(self, url: str, current: str, exc: httpx.HTTPError) -> UpstreamError:
        s = self.settings
        where = current if current == url else f"{current} (redirected from {url})"
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            message = (
                f"Timed out after {s.fetch_connect_timeout:g} s connecting to {where}; the "
                "upstream is unreachable or slow. Check network, DNS and proxy."
            )
        elif isinstance(exc, httpx.TimeoutException):
            message = (
                f"Timed out after {s.fetch_read_timeout:g} s waiting for data from {where}; "
                "the upstream stalled. Raise SYNCD_FETCH_READ_TIMEOUT if it is "
                "just slow."
            )
        elif isinstance(exc, httpx.ConnectError) and _certificate_refused(exc):
            # Retrying cannot help: the certificate stays wrong until someone fixes it.
            return UpstreamError(
                f"The TLS certificate of {where} could not be verified ({exc}). Check that "
                "the source URL names the host the certificate is for; a mirror with a "
                "private CA needs that CA in SSL_CERT_FILE.",
                transient=False,
                url=url,
            )
        elif isinstance(exc, httpx.ConnectError):
            message = (
                f"Could not connect to {where}: {exc}. Check the source URL, network, DNS "
                "and proxy settings."
            )
        elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            message = f"The connection to {where} broke before the whole body arrived ({exc})."
        elif isinstance(exc, httpx.DecodingError):
            message = f"{where} sent a body that could not be decoded ({exc})."
        elif isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return UpstreamError(
                f"{where} is not a URL syncd can fetch ({exc}).", transient=False, url=url
            )
        else:
            message = f"Fetching {where} failed: {type(exc).__name__}: {exc}."
        return UpstreamError(message, transient=True, url=url)


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a connect error was the server's certificate failing verification (httpx
    wraps httpcore's error, which wraps ssl's)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _validators_of(response: httpx.Response) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if response.headers.get("etag"):
        found["etag"] = response.headers["etag"]
    if response.headers.get("last-modified"):
        found["last_modified"] = response.headers["last-modified"]
    return found


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(url: str, response: httpx.Response) -> UpstreamError:
    status = response.status_code
    reason = response.reason_phrase or ""
    if status == 429:
        retry_after = _retry_after(response.headers.get("retry-after"))
        hint = f"; it asks to wait {retry_after:g} s" if retry_after is not None else ""
        return UpstreamError(
            f"{url} is rate-limiting syncd (HTTP 429 {reason}){hint}.",
            transient=True,
            url=url,
            status=status,
            retry_after=retry_after,
        )
    if status >= 500:
        return UpstreamError(
            f"{url} answered HTTP {status} {reason}: an upstream server error.",
            transient=True,
            url=url,
            status=status,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    if status in (401, 403):
        hint = "the upstream refuses access; check the URL and any mirror permissions."
    elif status in _ABSENT_STATUSES:
        hint = "the file does not exist there; check the source URL."
    else:
        hint = "the request was refused; check the source URL."
    return UpstreamError(
        f"{url} answered HTTP {status} {reason}: {hint}",
        transient=False,
        url=url,
        status=status,
    )
