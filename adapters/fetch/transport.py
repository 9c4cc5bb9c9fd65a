"""The httpx wiring (pinned transport, environment proxies): kept apart because it is the
only code that reaches into httpx internals, so an httpx upgrade is checked here.
"""

from __future__ import annotations

import httpcore
import httpx

from adapters.fetch.deadline import DeadlineBackend
from adapters.fetch.pinning import PinnedBackend
from syncd.config import Settings

# httpx internals: httpx 0.28's HTTPTransport takes no network backend and a Client given
# its own transport reads no proxy variables. Both gaps are bridged here and only here; the
# tests in tests/unit/test_fetch_pinning.py fail if httpx changes either (and
# test_trickled_headers_through_a_proxy_hit_the_deadline in tests/integration/test_fetcher.py
# if a proxy pool's network backend moves).


class PinnedTransport(httpx.HTTPTransport):
    """httpx's HTTPTransport whose connections go through a `PinnedBackend`, and whose
    every network wait ends at the fetch deadline (`DeadlineBackend`)."""

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
                "PinnedTransport (adapters/fetch/transport.py) must be adapted to this "
                "httpx version."
            )
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            # Under the pinned backend, so each address it dials is bounded by the deadline.
            network_backend=PinnedBackend(
                settings, DeadlineBackend(inner if inner is not None else httpcore.SyncBackend())
            ),
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
        pattern: None if proxy is None else _with_deadline(httpx.HTTPTransport(proxy=proxy))
        for pattern, proxy in get_environment_proxies().items()
    }


def _with_deadline(transport: httpx.HTTPTransport) -> httpx.HTTPTransport:
    """`transport` with its connections to the proxy bounded by the fetch deadline, as the
    pinned ones are: httpcore's proxy pools keep their network backend in the private
    `_network_backend`, which is wrapped here."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.NetworkBackend):
        raise RuntimeError(
            "httpcore's proxy pool no longer keeps its network backend in `_network_backend`; "
            "adapters/fetch/transport.py must be adapted to this httpx version."
        )
    pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]
    return transport
