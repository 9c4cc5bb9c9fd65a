"""A deadline for a request's headers, at the HTTP server (uvicorn's httptools protocol).

uvicorn (0.55) has no header-read timeout: its keep-alive timer runs only between requests
and stops at the first byte of the next one, so a client that opens a connection and sends
headers slowly, or never finishes them, holds the connection forever (slowloris). This
protocol is uvicorn's own HttpToolsProtocol plus one timer: armed when a connection opens
and when a keep-alive connection waits for its next request (its first bytes may be in
already: pipelined), disarmed once the parser has a request's headers. While an answer is
being made the timer does not run (as with h11, which read a pipelined request only after
the answer before it). When it fires with a partial
request buffered, the client gets a 408 and the connection is closed; an idle connection is
just closed, as keep-alive does. Bodies are not covered (the body limit and the handlers'
own reads bound them).

httptools (llhttp, in C) rather than uvicorn's pure-Python h11: h11's parsing and event
objects were most of the server's own CPU per request left on the lean list path (issue 16).
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

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


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0  # set per server by `send_timeout.protocol_with_deadlines`

    _header_timer: asyncio.TimerHandle | None = None
    # Between a request's first byte and its last, and whether its headers are in.
    _in_message = False
    _headers_done = False
    _bytes_waiting = 0  # received since the timer was armed, for the log line

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is not None:
            self._bytes_waiting += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = True
        self._headers_done = False

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._disarm()  # the headers are in: from here on the request is the app's
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # Read before uvicorn starts the next pipelined request (its headers are in). Not
        # waiting either while this request's body is still coming (an early answer).
        waiting = not self.pipeline and not (self._in_message and self._headers_done)
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
            self._arm()  # waiting for the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._bytes_waiting = 0
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._in_message and not self._headers_done:  # a request's headers never finished
            log.warning(
                "request_header_timeout",
                client=f"{self.client[0]}:{self.client[1]}" if self.client else "",
                bytes_received=self._bytes_waiting,
                seconds=self.header_timeout,
            )
            self.transport.write(_timeout_answer())
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, with nosniff as every answer."""
        body = msg.encode("ascii")
        self.transport.write(
            b"".join(
                (
                    STATUS_LINE[400],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"connection: close\r\n",
                    b"x-content-type-options: nosniff\r\n",
                    b"content-length: %d\r\n\r\n" % len(body),
                    body,
                )
            )
        )
        self.transport.close()
