"""The header deadline on uvicorn's httptools protocol (syncd/api/header_timeout.py), against
a real uvicorn server in this process: a pipelined request whose headers stop half-way is
not answered 408 in the middle of the answer before it (the deadline does not run while an
answer is being made), and gets its 408 once that answer is out. The slowloris cases on the
whole app are tests/reliability/test_api_headers.py and test_api_drf.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from syncd.api.send_timeout import protocol_with_deadlines

HEADER_TIMEOUT = 0.3
ANSWER_SECONDS = 1.0  # the first answer takes longer than the header deadline


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await asyncio.sleep(ANSWER_SECONDS)
    body = b"x" * 10
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"10")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def port() -> Iterator[int]:
    config = uvicorn.Config(
        slow_app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_config=None,
        http=protocol_with_deadlines(HEADER_TIMEOUT, 30.0),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


def _read_all(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := sock.recv(4096):
            answer += chunk
    except TimeoutError:
        pass
    return answer


def test_a_pipelined_partial_request_waits_for_the_answer_before_it(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo")
        answer = _read_all(sock)
    first, _, rest = answer.partition(b"xxxxxxxxxx")
    assert first.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b"408" not in first, answer[:300]
    assert rest.startswith(b"HTTP/1.1 408"), answer[:300]


def test_a_complete_request_after_a_slow_answer_is_served(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request + request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        answer = _read_all(sock)
    assert answer.count(b"HTTP/1.1 200") == 2, answer[:500]
    assert b"408" not in answer
