"""Connection pinning: a name is resolved once more when connecting and only the
addresses the SSRF policy accepts are dialled, so DNS rebinding cannot slip past the
URL check.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore

from adapters.fetch.policy import _refusal, _resolve, address_allowed
from syncd.config import Settings
from syncd.errors import PermanentError


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
