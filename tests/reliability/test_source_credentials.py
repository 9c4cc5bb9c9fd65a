"""Credentials in a source URL: used by the worker, shown to nobody.

A catalog whose source is `http://mirror-user:<secret>@127.0.0.1:PORT/...`: a fake upstream that
records the request's Authorization header and answers 404, so its update fails with an
error text that names the URL. The worker must send the credentials upstream; the API's
`source_url` and `update_errors` (read anonymously), the API's and the worker's log lines,
the worker's /metrics and the rejection of a message quoting such a URL must show `***`
instead. A client that GETs the catalog and PUTs/PATCHes it back keeps the stored secret.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.tokens import create_token
from tests.reliability.catalogs import catalog_row
from tests.reliability.harness import (
    PROCESS_TEST,
    ApiServer,
    command_env,
    running,
    wait_consumers,
    wait_until,
    worker_process,
)
from tests.reliability.private_services import free_port
from tests.reliability.readers import CATALOGS
from tests.reliability.results import CaseRecord
from tests.reliability.test_malformed_messages import _envelope, _publish

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(180)]

SECRET = "s3cret-" + uuid.uuid4().hex[:8]
USER = "mirror-user"


@contextmanager
def _upstream_404() -> Iterator[tuple[int, list[str]]]:
    """A local upstream answering 404 to everything; yields (port, Authorization headers)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_source_credentials_are_used_but_never_shown(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("source_credentials")
    engine = make_engine(pg_url)
    with session_scope(make_session_factory(engine)) as session:
        _, key = create_token(session, name="rel-credentials", is_staff=True)
    metrics_port = free_port()
    queue, env = command_env(pg_url, amqp_url, "rel_cred", metrics_port=metrics_port)
    worker = worker_process(env, logs / "worker.log")
    api = ApiServer(env, logs / "api.log")
    staff = {"Authorization": f"Token {key}"}
    with _upstream_404() as (port, authorizations), running(worker):
        source = f"http://{USER}:{SECRET}@127.0.0.1:{port}/repology.json"
        shown = f"http://***@127.0.0.1:{port}/repology.json"
        api.start()
        try:
            wait_consumers(amqp_url, queue, timeout=90)
            with httpx.Client(base_url=api.base_url, timeout=30) as http:
                # The catalog row first (an import that fails before its row exists leaves
                # no update_errors to read), then an update that the 404 fails.
                created = http.post(
                    CATALOGS,
                    json={
                        "name": "Spack",
                        "version": "2025-11-26",
                        "catalog_type": "source_package",
                        "source_url": source,
                    },
                    headers=staff,
                )
                assert created.status_code == 201, created.text
                posted = http.post(
                    f"{CATALOGS}{created.json()['uuid']}/update_catalog/", headers=staff
                )
                assert posted.status_code == 202, posted.text
                row = wait_until(
                    lambda: (r := catalog_row(engine, name="Spack")) and r["update_errors"] and r,
                    timeout=60,
                    what="the failed update's update_errors",
                )
                listed = http.get(CATALOGS)
                obj = http.get(f"{CATALOGS}{row['uuid'].hex}/").json()
                # A client writing back what it read: PUT, then PATCH, the redacted URL.
                put = http.put(f"{CATALOGS}{row['uuid'].hex}/", json=obj, headers=staff)
                after_put = catalog_row(engine, name="Spack")
                patch = {"source_url": obj["source_url"]}
                patched = http.patch(f"{CATALOGS}{row['uuid'].hex}/", json=patch, headers=staff)
                after_patch = catalog_row(engine, name="Spack")
            # A message quoting a credential URL: rejected, its reason logged.
            bad = _envelope(queue, actor_name=source, kwargs={})
            _publish(amqp_url, queue, [json.dumps(bad).encode()])
            worker.wait_event("message_rejected", timeout=30)
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        finally:
            api.stop()
    engine.dispose()

    basic = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    texts = {
        "API list (anonymous)": listed.text,
        "API retrieve": json.dumps(obj),
        "worker log": worker.log_text(),
        "API log": api.process.log_text(),
        "worker /metrics": metrics,
    }
    leaks = [where for where, text in texts.items() if SECRET in text]
    record.try_(
        "an update of a Spack catalog whose source URL has user:password credentials, "
        "answered 404 by a local upstream; the catalog read anonymously; a staff PUT of the "
        "object as read and a PATCH of its source_url; a queue message whose actor_name is the URL"
    )
    record.figure("places searched for the secret", len(texts))
    record.figure("places showing it", len(leaks))
    record.figure("upstream requests with the credentials", authorizations.count(basic))
    record.summarize(
        f"secret found in {len(leaks)} of {len(texts)} places (API, logs, /metrics); the "
        f"worker sent it upstream; a PUT/PATCH of the redacted form kept it"
    )
    assert authorizations and all(a == basic for a in authorizations), authorizations
    assert row["source_url"] == source
    record.hold("the worker fetched with the stored credentials (HTTP Basic)")
    assert obj["source_url"] == shown, obj
    assert shown in obj["update_errors"], obj["update_errors"]
    assert leaks == [], leaks
    record.hold(
        "source_url and update_errors show http://***@host/..., and no API answer, log line "
        "(API or worker, the rejected message's reason included) or metric holds the secret"
    )
    assert put.status_code == 200, put.text
    assert patched.status_code == 200, patched.text
    assert after_put is not None and after_put["source_url"] == source, after_put
    assert after_patch is not None and after_patch["source_url"] == source, after_patch
    record.hold("PUT and PATCH of the redacted source_url left the stored credentials as they were")
