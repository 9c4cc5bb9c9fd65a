"""A deadline for sending answers, at the HTTP server (uvicorn's httptools protocol).

uvicorn (0.55) has no send timeout: a client that stops reading keeps its connection, the
answers queued for it and the coroutine awaiting the write, for as long as it likes. What a
client does not read waits in two places, and each gets the same deadline, `send_timeout`:

- the kernel's socket buffer (autotuned up to megabytes): on Linux, TCP_USER_TIMEOUT makes
  the kernel reset a connection whose sent data stays unacknowledged, or whose peer keeps
  its receive window shut, for that long;
- the transport's write buffer, once the kernel's is full: the transport tells the protocol
  when it passes the high-water mark (pause_writing) and when it drains below the low-water
  mark (resume_writing). A timer runs in between; when it fires and the buffer has not
  shrunk since it was armed, the connection is reset (SO_LINGER 0: neither the process nor
  the kernel keeps the unsent bytes), else it is armed again.

Either way the awaiting writers are released, as uvicorn does for any lost connection, and
their answers discarded; one `response_send_timeout` line is logged. As nginx's send_timeout,
the deadline bounds a stall, not a transfer: a client that takes some of its answer within
every `send_timeout` keeps its connection, however big the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from syncd.api.header_timeout import HeaderTimeoutProtocol
from syncd.logging import get_logger

log = get_logger(__name__)

# SO_LINGER on, 0 s: close() resets the connection and discards what the kernel still holds.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)


class DeadlineProtocol(HeaderTimeoutProtocol):
    """uvicorn's HttpToolsProtocol with the header deadline and a send deadline."""

    send_timeout: float = 30.0  # set per server by `protocol_with_deadlines`

    _send_timer: asyncio.TimerHandle | None = None
    _unsent_when_armed = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
            with contextlib.suppress(OSError):
                sock.setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(self.send_timeout * 1000)
                )

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._arm_send_timer()

    def resume_writing(self) -> None:
        self._stop_send_timer()
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_send_timer()
        if isinstance(exc, TimeoutError):  # ETIMEDOUT: the kernel's TCP_USER_TIMEOUT fired
            self._log_timeout(by="kernel")
        super().connection_lost(exc)

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _arm_send_timer(self) -> None:
        self._unsent_when_armed = self.transport.get_write_buffer_size()
        self._send_timer = self.loop.call_later(self.send_timeout, self._send_expired)

    def _send_expired(self) -> None:
        self._send_timer = None
        if self.transport.get_write_buffer_size() < self._unsent_when_armed:
            self._arm_send_timer()  # the client took some: slow, not stalled
            return
        self._log_timeout(by="server", unsent_bytes=self.transport.get_write_buffer_size())
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        # abort(), not close(): close() would wait for the buffer to drain, which it will not.
        self.transport.abort()

    def _log_timeout(self, **where: object) -> None:
        log.warning(
            "response_send_timeout",
            client=f"{self.client[0]}:{self.client[1]}" if self.client else "",
            seconds=self.send_timeout,
            **where,
        )


def protocol_with_deadlines(header_seconds: float, send_seconds: float) -> type[Any]:
    """uvicorn's `http=` protocol class with a header and a send deadline, in seconds."""
    return type(
        "DeadlineProtocol",
        (DeadlineProtocol,),
        {"header_timeout": header_seconds, "send_timeout": send_seconds},
    )
