"""One deadline for a whole fetch, enforced where the bytes move: every connect, read and
write of the fetcher's connections waits at most until it.

A read timeout starts again with each byte, so it cannot bound a request on its own: an
upstream that sent its status line and then one header byte per second held a fetch for
600 s under a 20 s deadline, because the deadline was only looked at between body chunks
and httpx returns no response before the last header byte. Here each network operation
gets the smaller of its own timeout and the time left.

The deadline is per thread (the fetcher's client is shared by a worker's threads, and a
sync request runs its network operations in the calling thread); `deadline_at` sets it for
the duration of one fetch. Outside such a block the streams behave exactly as without this
module.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore

_current = threading.local()


class DeadlineReached:
    """Marks a timeout raised because the fetch deadline passed, not a network timeout, so
    the fetcher can tell the two apart in the exception chain httpx hands it."""


class _ConnectDeadline(DeadlineReached, httpcore.ConnectTimeout):
    pass


class _ReadDeadline(DeadlineReached, httpcore.ReadTimeout):
    pass


class _WriteDeadline(DeadlineReached, httpcore.WriteTimeout):
    pass


@contextmanager
def deadline_at(when: float) -> Iterator[None]:
    """Bound this thread's network operations by `when` (a time.monotonic() value)."""
    previous = getattr(_current, "when", None)
    _current.when = when
    try:
        yield
    finally:
        _current.when = previous


def deadline_reached(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, is the deadline passing."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DeadlineReached):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _bounded(
    timeout: float | None, error: type[httpcore.TimeoutException]
) -> tuple[float | None, bool]:
    """The timeout to wait with, and whether the deadline (not `timeout`) sets it."""
    when: float | None = getattr(_current, "when", None)
    if when is None:
        return timeout, False
    left = when - time.monotonic()
    if left <= 0:
        raise error("the fetch deadline has passed")
    if timeout is None or left < timeout:
        return left, True
    return timeout, False


@contextmanager
def _as_deadline(by_deadline: bool, error: type[httpcore.TimeoutException]) -> Iterator[None]:
    """A timeout of a wait the deadline bounded is the deadline passing."""
    try:
        yield
    except httpcore.TimeoutException as exc:
        if by_deadline:
            raise error(str(exc) or "the fetch deadline has passed") from exc
        raise


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every wait ends at the thread's fetch deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        bounded, by_deadline = _bounded(timeout, _ReadDeadline)
        with _as_deadline(by_deadline, _ReadDeadline):
            return self._inner.read(max_bytes, bounded)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        bounded, by_deadline = _bounded(timeout, _WriteDeadline)
        with _as_deadline(by_deadline, _WriteDeadline):
            self._inner.write(buffer, bounded)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded, by_deadline = _bounded(timeout, _ConnectDeadline)
        with _as_deadline(by_deadline, _ConnectDeadline):
            return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """A network backend whose connects, and the streams they open, end at the thread's
    fetch deadline. Wraps the pinned backend, and a proxy transport's own."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded, by_deadline = _bounded(timeout, _ConnectDeadline)
        with _as_deadline(by_deadline, _ConnectDeadline):
            stream = self.inner.connect_tcp(
                host,
                port,
                timeout=bounded,
                local_address=local_address,
                socket_options=socket_options,
            )
        return DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - the fetcher never uses a unix socket
        bounded, _ = _bounded(timeout, _ConnectDeadline)
        stream = self.inner.connect_unix_socket(path, bounded, socket_options)
        return DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)
