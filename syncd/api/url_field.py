"""Whether a text is a URL, as DRF's URLField judges a catalog's source_url.

Waldur stores `source_url` in a Django URLField: anything that is not `scheme://host...` with
a well-formed host is refused with "Enter a valid URL.". syncd answers the same for the same
texts, then applies its own stricter policy (schemes, private networks: adapters.fetch) with
its own wording. Two differences on purpose: any scheme is judged here (Django only knows
http, https, ftp and ftps), so the policy can say *why* gopher:// or ftp:// is refused, and a
file:// URL needs no host (an operator's local mirror, when SYNCD_ALLOW_FILE_SOURCES allows).
"""

from __future__ import annotations

import ipaddress
import re

from adapters.fetch import parse_source
from syncd.errors import PermanentError

INVALID_URL = "Enter a valid URL."

_SHAPE = re.compile(r"^(?P<scheme>[a-z][a-z0-9.+-]*)://(?P<authority>[^/?#]*)", re.IGNORECASE)
# A host label: letters (any script), digits and inner hyphens; the last one (the top-level
# domain) letters only, or an IDNA `xn--` label.
_LABEL = re.compile(r"^(?!-)[a-z0-9\u00a1-\uffff-]{1,63}(?<!-)$", re.IGNORECASE)
_TOP_LEVEL = re.compile(r"^(?:[a-z\u00a1-\uffff-]{2,63}|xn--[a-z0-9]{1,59})$", re.IGNORECASE)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"^(?:{_OCTET}\.){{3}}{_OCTET}$")
_PORT = re.compile(r"^\d{1,5}$")
MAX_HOST_CHARS = 253


def is_valid_url(url: str) -> bool:
    """True when `url` is `scheme://[user[:password]@]host[:port][/path][?query][#fragment]`
    with a host that is a domain name with a top-level domain, `localhost`, an IPv4 address
    or a bracketed IPv6 address, a port of 1 to 65535, and no whitespace anywhere; file://
    URLs need no host. Also refused: what the fetcher itself cannot parse."""
    if any(char.isspace() for char in url):
        return False
    shape = _SHAPE.match(url)
    if shape is None:
        return False
    try:
        parse_source(url)  # the fetcher's own grammar (brackets, ports, httpx's characters)
    except PermanentError:
        return False
    if shape["scheme"].lower() == "file":
        return True
    hostport = shape["authority"].rpartition("@")[2]
    host, port = _split_port(hostport)
    if port is not None and not (_PORT.match(port) and 1 <= int(port) <= 65535):
        return False
    return _valid_host(host)


def _split_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        inside, bracket, after = hostport.partition("]")
        if not bracket or not after:
            return inside + bracket, None
        return inside + bracket, after[1:] if after.startswith(":") else after
    host, colon, port = hostport.rpartition(":")
    return (host, port) if colon else (hostport, None)


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        if "%" in host:
            return False  # a zone id (fe80::1%eth0): Django's validator refuses it too
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if not host or len(host) > MAX_HOST_CHARS:
        return False
    if host.lower() == "localhost" or _IPV4.match(host):
        return True
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return False
    return _TOP_LEVEL.match(labels[-1]) is not None
