"""Which upstream failures are worth retrying: the classification lives apart from the
retry loop so the transient/permanent decision can be read (and tested) on its own.
"""

from __future__ import annotations

import ssl
import time
from email.utils import parsedate_to_datetime

import httpx

from adapters.fetch.deadline import deadline_reached
from adapters.fetch.results import _ABSENT_STATUSES
from syncd.config import Settings
from syncd.errors import UpstreamError


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a connect error was the server's certificate failing verification (httpx
    wraps httpcore's error, which wraps ssl's)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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


def transport_error(
    url: str, current: str, exc: httpx.HTTPError, settings: Settings, deadline: float
) -> UpstreamError:
    """A failure httpx raised, in words, with its retry decision."""
    where = current if current == url else f"{current} (redirected from {url})"
    if deadline_reached(exc):
        return deadline_error(url, current, deadline)
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        message = (
            f"Timed out after {settings.fetch_connect_timeout:g} s connecting to {where}; the "
            "upstream is unreachable or slow. Check network, DNS and proxy."
        )
    elif isinstance(exc, httpx.TimeoutException):
        message = (
            f"Timed out after {settings.fetch_read_timeout:g} s waiting for data from {where}; "
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
    elif isinstance(exc, httpx.RemoteProtocolError) and "location header" in str(exc):
        return bad_location(url, exc)  # httpx parses a redirect's Location itself
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


def bad_location(url: str, exc: Exception) -> UpstreamError:
    # A redirect to a malformed URL stays malformed: permanent, not retried.
    return UpstreamError(f"{url} redirected to an invalid URL: {exc}", transient=False, url=url)


def deadline_error(
    url: str, current: str, deadline: float, received: int | None = None
) -> UpstreamError:
    """The fetch deadline passed: transient (a slow upstream may recover), with the setting
    it derives from."""
    where = current if current == url else f"{current} (redirected from {url})"
    so_far = f"; {received} body bytes had arrived" if received is not None else ""
    return UpstreamError(
        f"Timed out: fetching {where} took longer than {deadline:g} s, the deadline for the "
        f"whole request (connect, response headers and body{so_far}); the upstream is too "
        "slow or trickles its answer. Raise SYNCD_FETCH_READ_TIMEOUT, of which the deadline "
        "is a multiple, if it is always this slow.",
        transient=True,
        url=url,
    )
