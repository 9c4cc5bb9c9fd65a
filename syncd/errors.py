"""Errors every layer shares, classified for the retry decision.

A transient error (network, 5xx, lock busy, database gone) is worth retrying; a permanent
one (bad data, unknown catalog, no adapter) is not. The message is written into a catalog's
`update_errors`, so it says what failed, where and why in words an operator can act on.
It never shows the credentials of a URL it names (syncd.redaction): upstream errors quote
source URLs, and their text reaches the API, the logs and `syncd import --wait`.
"""

from __future__ import annotations

from syncd.redaction import redact_urls


class SyncdError(Exception):
    transient: bool = False

    def __init__(self, message: str) -> None:
        message = redact_urls(message)
        super().__init__(message)
        self.message = message


class TransientError(SyncdError):
    transient = True


class PermanentError(SyncdError):
    transient = False


class UpstreamError(SyncdError):
    """Fetching or parsing upstream data failed."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.url = url
        self.status = status
        self.retry_after = retry_after


class UnknownCatalogError(PermanentError):
    """The command names a catalog that does not exist."""


class NoAdapterError(PermanentError):
    """No registered adapter handles this catalog (Waldur: 'No loader configuration found')."""


class CatalogExistsError(PermanentError):
    """An import names a (name, version, type) that already exists."""


class VersionNotOfferedError(PermanentError):
    """An import names a version its upstream does not offer (no catalog is created)."""


class RefusedError(PermanentError):
    """Upstream's data was refused on purpose, not for a fault: its run is `refused`, and
    `force` accepts it once (an older snapshot, or one that would empty most of a catalog)."""


class StaleSnapshotError(RefusedError):
    """Upstream served data older than the catalog holds (a stale mirror or CDN node)."""


class LockBusyError(TransientError):
    """Another sync of the same catalog holds its lock."""


class InvalidMessageError(PermanentError):
    """A queue message that cannot be executed (bad envelope, unknown actor, wrong kwargs)."""
