"""adapters.fetch: the one HTTP fetcher every adapter downloads with, and its SSRF policy.
Guarantees: vetted URLs and addresses only, bounded time and size, every failure an UpstreamError.
Does not parse bodies and never touches the database or the queue.

A `Fetcher` wraps one `httpx.Client` (thread-safe; one per process) and adds what upstream
catalogs need: connect/read timeouts, one deadline per whole fetch, bounded retries of transient
failures (connect errors, timeouts, dropped connections, 429 and 5xx, honouring a capped
Retry-After), gzip, a maximum body size, redirects only to the same host or to
`settings.allowed_redirect_hosts`, conditional requests, `file://` sources for air-gapped
mirrors, and the SSRF guard `check_source_allowed`.

The guard is applied twice: `check_source_allowed` judges the URL up front (the API uses it
for `source_url` too), and every connection goes through `PinnedTransport`/`PinnedBackend`,
which resolve the host once more, keep only the addresses the same policy
(`address_allowed`) accepts and connect to exactly those IPs. A name that answers a public
address to the check and an internal one to the connection (DNS rebinding), directly or as
a redirect target, is refused with the same permanent error. The policy admits global
unicast addresses only; an IPv6 address that carries an IPv4 one (NAT64 64:ff9b::/96 and
64:ff9b:1::/48, 6to4 2002::/16, IPv4-mapped, -compatible and -translated) is judged by that
IPv4 address, and site-local fec0::/10 is refused. With
SYNCD_ALLOW_PRIVATE_SOURCES every address passes, but connections are still pinned. Proxies
from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) are honoured; through a
proxy the proxy resolves the upstream, so there syncd's up-front check is the only check on
its side and the proxy's own egress rules must keep it out of internal networks.

Bodies are streamed into a temporary file (in `settings.cache_dir` when set) and parsed from
there, so a large upstream is never one bytes object in memory. The file is deleted when the
`FetchResult` is closed or garbage-collected. `FetchResult.open()` unpacks a file that is
itself gzip (whatever the server announced) and counts the unpacked bytes against the same
SYNCD_FETCH_MAX_BYTES; the result also carries the fetch deadline as the parse budget of
adapters/json_stream.py (`parse_seconds`).

Validators are kept per catalog as a dict keyed by URL:
`{url: {"etag": ..., "last_modified": ..., "hash": ...}}`; an optional file that was missing
is remembered as `{url: {"absent": True}}`. `fetch(url, validators=...)` looks its own URL up
in that dict and returns the new entry in `FetchResult.validators`. "hash" is the sha256 of
the body, taken while it streams (a file:// source is read once for it): a body that hashes
as the stored one is `not_modified` (`same_body`) whatever its ETag, and a hash that upstream
publishes (`published_hash`, EESSI's hashes.json) equal to the stored one skips the request.
`newest_last_modified`
reads the snapshot time of a source that states none from such a dict (a file's mtime for
file:// sources).

The deadline (`deadline.py`) covers every connect, response-header read and body read of
every attempt and redirect, pinned or through a proxy: an upstream that trickles its status
line or headers a byte at a time fails at the deadline like a slow body does.

Every failure is a `syncd.errors.UpstreamError` whose `transient` flag drives the retry
decision and whose message says which URL, what happened and what an operator can do.
"""

from adapters.fetch.fetcher import Fetcher
from adapters.fetch.pinning import AddressRefused, PinnedBackend
from adapters.fetch.policy import address_allowed, check_source_allowed, parse_source
from adapters.fetch.results import FetchResult, child_url, newest_last_modified
from adapters.fetch.transport import PinnedTransport, environment_proxy_mounts

__all__ = [
    "AddressRefused",
    "FetchResult",
    "Fetcher",
    "PinnedBackend",
    "PinnedTransport",
    "address_allowed",
    "check_source_allowed",
    "child_url",
    "environment_proxy_mounts",
    "newest_last_modified",
    "parse_source",
]
