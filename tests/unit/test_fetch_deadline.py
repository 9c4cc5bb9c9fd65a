"""DeadlineBackend: every wait of a fetch's connections ends at the fetch deadline.

The trickled-headers and proxy cases run against real sockets in
tests/integration/test_fetcher.py; here each kind of wait (connect, TLS, write, read) is
checked to be bounded, and a timeout the deadline caused to be told apart from a network one.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable

import httpcore
import pytest

from adapters.fetch.deadline import DeadlineBackend, deadline_at, deadline_reached


class Waits(httpcore.NetworkBackend, httpcore.NetworkStream):
    """A network that records the timeout of each wait and times out when told to."""

    def __init__(self, time_out: bool = False) -> None:
        self.timeouts: list[tuple[str, float | None]] = []
        self.time_out = time_out

    def _wait(self, what: str, timeout: float | None, error: type[Exception]) -> None:
        self.timeouts.append((what, timeout))
        if self.time_out:
            raise error("timed out")

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self._wait("connect", timeout, httpcore.ConnectTimeout)
        return self

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._wait("read", timeout, httpcore.ReadTimeout)
        return b"x"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._wait("write", timeout, httpcore.WriteTimeout)

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._wait("tls", timeout, httpcore.ConnectTimeout)
        return self

    def close(self) -> None:
        pass


def test_every_wait_ends_at_the_deadline_and_only_inside_a_fetch() -> None:
    net = Waits()
    backend = DeadlineBackend(net)
    with deadline_at(time.monotonic() + 5):
        stream = backend.connect_tcp("upstream.test", 443, timeout=10)
        stream = stream.start_tls(ssl.create_default_context(), "upstream.test", timeout=10)
        stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=60)
        stream.read(65536, timeout=60)
        stream.read(65536, timeout=None)
        stream.read(65536, timeout=1)  # a shorter timeout of its own stays
    assert [w for w, _t in net.timeouts] == ["connect", "tls", "write", "read", "read", "read"]
    assert all(t is not None and t <= 5 for _w, t in net.timeouts[:5]), net.timeouts
    assert net.timeouts[5] == ("read", 1)
    stream.read(65536, timeout=60)  # outside a fetch: untouched
    assert net.timeouts[-1] == ("read", 60)


@pytest.mark.parametrize("what", ["connect", "read", "write"])
def test_a_passed_deadline_fails_at_once_as_a_deadline(what: str) -> None:
    net = Waits()
    stream = DeadlineBackend(net).connect_tcp("upstream.test", 80, timeout=10)
    with deadline_at(time.monotonic() - 0.1), pytest.raises(httpcore.TimeoutException) as caught:
        if what == "connect":
            DeadlineBackend(net).connect_tcp("upstream.test", 80, timeout=10)
        elif what == "read":
            stream.read(1, timeout=10)
        else:
            stream.write(b"x", timeout=10)
    assert deadline_reached(caught.value)
    assert len(net.timeouts) == 1  # only the first connect waited


def test_a_timeout_is_the_deadline_only_when_the_deadline_set_it() -> None:
    net = Waits()
    stream = DeadlineBackend(net).connect_tcp("upstream.test", 80)
    net.time_out = True
    with deadline_at(time.monotonic() + 60), pytest.raises(httpcore.ReadTimeout) as own:
        stream.read(1, timeout=1)  # its own 1 s ran out, long before the deadline
    assert not deadline_reached(own.value)
    with deadline_at(time.monotonic() + 1), pytest.raises(httpcore.ReadTimeout) as bounded:
        stream.read(1, timeout=60)  # the deadline cut the 60 s wait short
    assert deadline_reached(bounded.value)
