"""A deadline for a request's headers, at the HTTP server (uvicorn's h11 protocol).

uvicorn (0.55) has no header-read timeout: its keep-alive timer runs only between requests
and stops at the first byte of the next one, so a client that opens a connection and sends
headers slowly, or never finishes them, holds the connection forever (slowloris). This
protocol is uvicorn's own H11Protocol plus one timer: armed when a connection opens and
when a keep-alive connection waits for its next request, disarmed once h11 has parsed a
request's headers. When it fires with a partial request buffered, the client gets a 408
and the connection is closed; an idle connection is just closed, as keep-alive does.
Bodies are not covered (the body limit and the handlers' own reads bound them).
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from syncd.logging import get_logger

log = get_logger(__name__)


def _timeout_answer() -> bytes:
    body = json.dumps({"detail": "Request headers not received in time."}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        "x-content-type-options: nosniff\r\n"  # as every answer of the app (api/headers.py)
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeaderTimeoutProtocol(H11Protocol):
    header_timeout: float = 10.0  # set per server by `send_timeout.protocol_with_deadlines`

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in: from here on the request is the app's

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # waiting for the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        partial, _closed = self.conn.trailing_data
        if partial:
            log.warning(
                "request_header_timeout",
                client=f"{self.client[0]}:{self.client[1]}" if self.client else "",
                bytes_received=len(partial),
                seconds=self.header_timeout,
            )
            self.transport.write(_timeout_answer())
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, with nosniff as every answer."""
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"connection", b"close"),
            (b"x-content-type-options", b"nosniff"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=msg.encode("ascii")),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))  # type: ignore[arg-type]
        self.transport.close()
