"""Which upstream failures are worth retrying: the classification lives apart from the
retry loop so the transient/permanent decision can be read (and tested) on its own.
"""

from __future__ import annotations

import ssl
import time
from email.utils import parsedate_to_datetime

import httpx

from adapters.fetch.results import _ABSENT_STATUSES
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
