"""The SSRF policy in one place, so the up-front URL check and the connect-time check
(adapters/fetch/pinning.py) can never judge an address differently.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

import httpx

from syncd.config import Settings
from syncd.errors import PermanentError

ALLOWED_SCHEMES = ("http", "https", "file")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# IPv6 forms that carry an IPv4 address in their last 32 bits: a host, translator or tunnel
# delivers what is sent to them to that IPv4 address, so they are judged by it. Python's
# is_global passes most of them (64:ff9b::a9fe:a9fe reaches 169.254.169.254 through NAT64).
_IPV4_IN_LAST_32_BITS = tuple(
    ipaddress.IPv6Network(prefix)
    for prefix in (
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "::/96",  # IPv4-compatible (deprecated; also holds :: and ::1)
        "64:ff9b::/96",  # NAT64, the well-known prefix
        "64:ff9b:1::/48",  # NAT64, the local-use prefix, with a /96 inside it as DNS64 uses
    )
)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form delivers to (6to4's 2002::/16 and the
    prefixes above); None for an IPv6 address of its own."""
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in _IPV4_IN_LAST_32_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:  # fec0::/10: deprecated, but still routed inside sites
            return False
        carried = embedded_ipv4(address)
        if carried is not None:
            address = carried
    return address.is_global and not address.is_multicast


def describe_address(address: IPAddress) -> str:
    """The address as a refusal names it, with the IPv4 address it carries, if any."""
    carried = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return f"{address} (which carries {carried})" if carried is not None else str(address)


def address_allowed(address: IPAddress, settings: Settings) -> bool:
    """The SSRF policy for one address: global unicast only, judging an IPv6 form that
    carries an IPv4 address (NAT64, 6to4, mapped, compatible) by that IPv4 address, unless
    the operator allows private sources. The one definition both the URL check
    (`check_source_allowed`) and the connection (`PinnedBackend`) apply."""
    return settings.allow_private_sources or _is_public(address)


def _refusal(host: str, addresses: str) -> str:
    return (
        f"{host} resolves to {addresses}, a loopback, private, link-local or other "
        "non-public address; an operator can allow internal upstreams with "
        "SYNCD_ALLOW_PRIVATE_SOURCES=true."
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


def parse_source(url: str) -> SplitResult:
    """`url` split into its parts; PermanentError when it is not a URL the fetcher can
    request (unbalanced IPv6 brackets, a port that is not 1-65535, characters httpx refuses).
    Every parse of a source goes through here, so a malformed URL is a refusal that says
    why (a 400 in the API, a permanent failure in the worker), never a ValueError."""
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() in ("http", "https"):
            httpx.URL(url)  # the client's own grammar, stricter than urlsplit's
    except (ValueError, httpx.InvalidURL) as exc:
        raise PermanentError(f"Source {url!r} is refused: not a valid URL ({exc}).") from None
    try:
        port = parts.port  # parsed lazily: a bad port surfaces only here
    except ValueError:
        port = 0
    if port == 0:
        raise PermanentError(
            f"Source {url!r} is refused: not a valid URL (the port must be 1 to 65535)."
        )
    return parts


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
    parts = parse_source(url)
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
            raise PermanentError(
                f"Source {url!r} is refused: {_refusal(host, describe_address(address))}"
            )
