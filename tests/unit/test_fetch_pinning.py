"""PinnedBackend / PinnedTransport: connections go only to addresses the SSRF policy vetted.

No sockets here: the resolver is a test double (socket.getaddrinfo patched in-process) and
the network below the pinned backend is httpcore's MockBackend, wrapped to record what it
was asked to connect to. tests/integration/test_fetcher.py runs the same against a real
server on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
import pytest

from adapters.fetch import (
    AddressRefused,
    Fetcher,
    PinnedBackend,
    PinnedTransport,
    address_allowed,
    check_source_allowed,
    environment_proxy_mounts,
)
from syncd.config import Settings
from syncd.errors import PermanentError, UpstreamError
from tests.support.fake_dns import FakeDNS

STRICT = Settings()
OPEN = Settings(allow_private_sources=True)
PUBLIC = "93.184.215.14"
OK = [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n", b"\r\n", b"ok"]


class Recorder(httpcore.NetworkBackend):
    """The network under the pinned backend: records each connect, then answers `OK`
    (or refuses the addresses in `refuse`)."""

    def __init__(self, refuse: Iterable[str] = ()) -> None:
        self.connects: list[tuple[str, int]] = []
        self.refuse = set(refuse)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.connects.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError("[Errno 111] Connection refused")
        return httpcore.MockStream(list(OK))


def test_rebinding_name_is_refused_at_connect_time(monkeypatch: pytest.MonkeyPatch) -> None:
    dns = FakeDNS(monkeypatch, rebind=[[PUBLIC], ["127.0.0.1"]])
    check_source_allowed("http://rebind.test/x.json", STRICT)  # the check sees PUBLIC
    net = Recorder()
    with pytest.raises(AddressRefused) as caught:
        PinnedBackend(STRICT, net).connect_tcp("rebind.test", 80)
    assert net.connects == []
    assert dns.lookups == ["rebind.test", "rebind.test"]
    assert isinstance(caught.value, PermanentError)
    assert "127.0.0.1 when connecting" in caught.value.message
    assert "SYNCD_ALLOW_PRIVATE_SOURCES" in caught.value.message


@pytest.mark.parametrize(
    "private",
    ["127.0.0.1", "169.254.169.254", "10.0.0.7", "::1", "::ffff:127.0.0.1", "fe80::1", "fd00::1"],
)
def test_private_answers_are_refused_and_allowed_only_by_the_setting(
    monkeypatch: pytest.MonkeyPatch, private: str
) -> None:
    FakeDNS(monkeypatch, internal=[[private]])
    net = Recorder()
    with pytest.raises(AddressRefused):
        PinnedBackend(STRICT, net).connect_tcp("internal.test", 443)
    PinnedBackend(OPEN, net).connect_tcp("internal.test", 443)
    # Still pinned with the setting: the IP is connected to, not the name.
    assert net.connects == [(private, 443)]


@pytest.mark.parametrize("literal", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "169.254.169.254"])
def test_ip_literals_are_judged_without_a_lookup(
    monkeypatch: pytest.MonkeyPatch, literal: str
) -> None:
    dns = FakeDNS(monkeypatch)
    net = Recorder()
    with pytest.raises(AddressRefused):
        PinnedBackend(STRICT, net).connect_tcp(literal, 80)
    assert net.connects == [] and dns.lookups == []


def test_only_allowed_answers_are_connected_to_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDNS(monkeypatch, mixed=[["127.0.0.1", PUBLIC, "::1", "2606:4700::1111"]])
    net = Recorder(refuse=[PUBLIC])
    PinnedBackend(STRICT, net).connect_tcp("mixed.test", 80)
    # PUBLIC refused the connection, so the next allowed address was tried; the private
    # ones were never connected to.
    assert net.connects == [(PUBLIC, 80), ("2606:4700::1111", 80)]


def test_last_connect_error_is_raised_when_every_allowed_address_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeDNS(monkeypatch, down=[[PUBLIC]])
    with pytest.raises(httpcore.ConnectError, match="refused"):
        PinnedBackend(STRICT, Recorder(refuse=[PUBLIC])).connect_tcp("down.test", 80)


def test_unresolvable_name_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(httpcore.ConnectError, match="Name or service not known"):
        PinnedBackend(STRICT, Recorder()).connect_tcp("nowhere.test", 80)


# IPv6 transition forms: the IPv4 address they deliver to decides (address -> allowed).
TRANSITION_FORMS = {
    "64:ff9b::a9fe:a9fe": False,  # NAT64 of 169.254.169.254
    "64:ff9b::a00:1": False,  # NAT64 of 10.0.0.1
    "64:ff9b:1::7f00:1": False,  # local-use NAT64 of 127.0.0.1
    "2002:a9fe:a9fe::1": False,  # 6to4 of 169.254.169.254
    "::127.0.0.1": False,  # IPv4-compatible
    "::ffff:0:a00:1": False,  # IPv4-translated 10.0.0.1
    "fec0::1": False,  # site-local
    "64:ff9b::5db8:d70e": True,  # NAT64 of PUBLIC
    "2002:5db8:d70e::1": True,  # 6to4 of PUBLIC
}


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        PUBLIC,
        *TRANSITION_FORMS,
    ],
)
def test_check_and_connection_apply_one_policy(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    FakeDNS(monkeypatch, host=[[address]])
    expected = TRANSITION_FORMS.get(address, address == PUBLIC)
    assert address_allowed(ipaddress.ip_address(address), STRICT) is expected
    for settings in (STRICT, OPEN):
        allowed = address_allowed(ipaddress.ip_address(address), settings)
        try:
            check_source_allowed("http://host.test/", settings)
            checked = True
        except PermanentError:
            checked = False
        try:
            PinnedBackend(settings, Recorder()).connect_tcp("host.test", 80)
            connected = True
        except AddressRefused:
            connected = False
        assert allowed == checked == connected, (address, settings.allow_private_sources)


def test_pinned_transport_sends_through_the_pinned_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fails if httpx stops sending through HTTPTransport._pool (see PinnedTransport)."""
    FakeDNS(monkeypatch, public=[[PUBLIC]], rebind=[["127.0.0.1"]])
    net = Recorder()
    with httpx.Client(transport=PinnedTransport(STRICT, inner=net)) as client:
        assert client.get("http://public.test:8080/x.json").text == "ok"
        with pytest.raises(AddressRefused):
            client.get("http://rebind.test/x.json")
    assert net.connects == [(PUBLIC, 8080)]


def test_fetcher_refusal_at_connect_is_permanent_and_names_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dns = FakeDNS(monkeypatch, rebind=[[PUBLIC], ["169.254.169.254"]])
    fetcher = Fetcher(Settings(fetch_retries=3), sleep=lambda _s: None)
    with pytest.raises(UpstreamError) as caught:
        fetcher.fetch("http://rebind.test/latest/meta-data/")
    assert not caught.value.transient
    assert caught.value.message.startswith("Source 'http://rebind.test/latest/meta-data/'")
    assert "169.254.169.254 when connecting" in caught.value.message
    assert "SYNCD_ALLOW_PRIVATE_SOURCES" in caught.value.message
    assert len(dns.lookups) == 2  # the check and one connect: not retried
    fetcher.close()


def test_environment_proxies_are_mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails if httpx's reading of the proxy variables moves (see environment_proxy_mounts)."""
    for name in ("ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "mirror.example.org")
    mounts = environment_proxy_mounts()
    assert isinstance(mounts["https://"], httpx.HTTPTransport)
    assert mounts["all://*mirror.example.org"] is None  # None = the pinned transport


@pytest.mark.parametrize("address", [a for a, allowed in TRANSITION_FORMS.items() if not allowed])
def test_rebinding_to_an_ipv6_form_of_an_internal_address_is_refused_at_connect(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    """The name answers a public address to the check, then an IPv6 form that carries an
    internal one to the connection: the connection is refused like the check would."""
    dns = FakeDNS(monkeypatch, rebind=[[PUBLIC], [address]])
    fetcher = Fetcher(Settings(fetch_retries=3), sleep=lambda _s: None)
    with fetcher, pytest.raises(UpstreamError) as caught:
        fetcher.fetch("http://rebind.test/latest/meta-data/")
    assert not caught.value.transient
    assert f"{address} when connecting" in caught.value.message
    assert "SYNCD_ALLOW_PRIVATE_SOURCES" in caught.value.message
    assert len(dns.lookups) == 2  # the check and one connect: not retried
