"""Events out (issue 15) in tests: outbox rows written as the syncs write them, a queue bound
to the events exchange, the published bodies checked against docs/events/*.schema.json, and
a TCP proxy in front of RabbitMQ that can be stopped and started again (an outage of the
shared broker without touching it)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import jsonschema_rs
import pika
from sqlalchemy import Engine, select

from syncd.db.process_tables import EventOutbox
from syncd.events.outbox import write_event

DOCS = Path(__file__).resolve().parents[2] / "docs"
EVENT_TYPES = ("catalog.created", "catalog.deleted", "catalog.synced", "catalog.sync_failed")


def schema(event_type: str) -> dict[str, Any]:
    return json.loads((DOCS / "events" / f"{event_type}.schema.json").read_text())


VALIDATORS = {t: jsonschema_rs.validator_for(schema(t)) for t in EVENT_TYPES}


def check_body(body: dict[str, Any]) -> None:
    """AssertionError naming every way `body` breaks its type's schema."""
    validator = VALIDATORS[body["type"]]
    problems = [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not problems, f"{body['type']} body breaks its schema: {problems}"


def synced_payload(run_uuid: uuid.UUID | None = None, changes: int = 2) -> dict[str, Any]:
    """A catalog.synced payload as the run history writes it (shared contract of issue 15)."""
    run = run_uuid or uuid.uuid4()
    kind = {"created": 1, "updated": 0, "deleted": 0, "unchanged": 5}
    return {
        "run_uuid": run.hex,
        "trigger": "message",
        "outcome": "succeeded",
        "started": "2026-12-03T10:00:00+00:00",
        "finished": "2026-12-03T10:00:02+00:00",
        "counts": {"packages": kind, "versions": kind, "targets": kind},
        "change_count": changes,
        "changes": [
            {
                "change": "package_added",
                "package_name": f"pkg{i}",
                "version": "",
                "module_version": "",
                "details": {},
            }
            for i in range(changes)
        ],
        "changes_url": f"/api/marketplace-software-changes/?run_uuid={run.hex}",
    }


def failed_payload(error: str = "upstream unreachable") -> dict[str, Any]:
    return {
        "run_uuid": uuid.uuid4().hex,
        "trigger": "scheduler",
        "outcome": "failed",
        "error": error,
        "will_retry": True,
    }


def write_events(engine: Engine, count: int, *, name: str = "Spack") -> list[str]:
    """`count` committed outbox rows (synced and sync_failed alternating); their event ids."""
    ids = []
    catalog = {"name": name, "version": "2026.12.01", "uuid": uuid.uuid4()}
    with engine.begin() as conn:
        for i in range(count):
            if i % 2:
                event_id = write_event(conn, "catalog.sync_failed", catalog, failed_payload())
            else:
                event_id = write_event(conn, "catalog.synced", catalog, synced_payload())
            ids.append(event_id.hex)
    return ids


def outbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(EventOutbox).order_by(EventOutbox.id)))


def bind_queue(amqp_url: str, exchange: str, queue: str, pattern: str = "catalog.#") -> None:
    """A durable queue bound to the events exchange (declared as syncd declares it)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
        channel.queue_declare(queue=queue, durable=True)
        channel.queue_bind(queue=queue, exchange=exchange, routing_key=pattern)
    finally:
        connection.close()


def take(
    amqp_url: str, queue: str, count: int, *, timeout: float = 30.0
) -> list[tuple[Any, Any, dict[str, Any]]]:
    """Wait for `count` messages (acked); [(method, properties, body), ...]; then whatever
    else is already waiting (so that a test sees duplicates too)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    taken: list[tuple[Any, Any, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                taken.append((method, properties, json.loads(body)))
                continue
            if len(taken) >= count or time.monotonic() > deadline:
                return taken
            time.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):
            connection.close()


class StoppableProxy:
    """Forwards 127.0.0.1:<port> to RabbitMQ; `stop()` closes the listener and every
    connection (RabbitMQ down, to the clients), `start()` listens on the same port again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()
        self.start()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            sockets, self.sockets = self.sockets, []
        for sock in [listener, *sockets]:
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def url(self, amqp_url: str) -> str:
        parts = urllib.parse.urlsplit(amqp_url)
        netloc = f"{parts.username}:{parts.password}@127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:  # stopped meanwhile
                    client.close()
                    server.close()
                    return
                self.sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def upstream_of(amqp_url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(amqp_url)
    return (parts.hostname or "127.0.0.1", parts.port or 5672)
