"""A TCP proxy in front of RabbitMQ that can stop forwarding (TCP stays open): what a
frozen node or a partition looks like to a client, without freezing the shared broker."""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from collections.abc import Iterator

import pytest


class FreezableProxy:
    """Forwards 127.0.0.1:<port> to a RabbitMQ; `frozen` holds every byte back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.thawed = threading.Event()
        self.thawed.set()
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self.thawed.clear()

    def thaw(self) -> None:
        self.thawed.set()

    def close(self) -> None:
        self.closed.set()
        self.thawed.set()
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                self.thawed.wait()
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture(name="proxy")
def proxy_fixture(amqp_url: str) -> Iterator[FreezableProxy]:
    parts = urllib.parse.urlsplit(amqp_url)
    running = FreezableProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    yield running
    running.close()


def via(amqp_url: str, port: int) -> str:
    parts = urllib.parse.urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
