"""`python -m tests.support.body_flood PORT CLIENTS SECONDS`: anonymous clients POSTing a
deeply nested 1 MB body in a loop, one connection per request; prints their statuses as JSON.

A process of its own, so that the flood's threads do not slow the test's own measurements
(they would share its interpreter lock). Standard library only: it starts at once.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections import Counter

PATH = "/api/marketplace-software-catalogs/"
DEEP_BODY = b"{" * 33 + b" " * 999_000  # under the default 1,000,000-byte limit


def request_head(length: int, token: str = "") -> bytes:
    auth = f"Authorization: Token {token}\r\n" if token else ""
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def read_head(sock: socket.socket) -> bytes:
    """What the server answered, up to the end of its headers; b"" when it said nothing."""
    answer = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split()[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _client(port: int, until: float, statuses: Counter[int]) -> None:
    head = request_head(len(DEEP_BODY))
    while time.monotonic() < until:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                with contextlib.suppress(OSError):  # the server may answer before the end
                    sock.sendall(head + DEEP_BODY)
                statuses[status_of(read_head(sock))] += 1
        except OSError:
            statuses[0] += 1


def main(argv: list[str]) -> int:
    port, clients, seconds = int(argv[0]), int(argv[1]), float(argv[2])
    until = time.monotonic() + seconds
    statuses: Counter[int] = Counter()
    threads = [
        threading.Thread(target=_client, args=(port, until, statuses)) for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({str(status): count for status, count in sorted(statuses.items())}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
