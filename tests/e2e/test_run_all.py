"""`syncd run` as an operator starts it: a subprocess in a fresh directory on the embedded
default (SQLite file, in-process queue), fed by the fake upstream.

The test imports a catalog through the HTTP API and reads it back, makes an import fail
(upstream answers 500), checks that /metrics moved as it should after each, stops the
process with SIGTERM, and checks that every line it printed is JSON with the process role
and, on the lines of a command, the command's context.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import upstream_data
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.slow

CATALOGS = "/api/marketplace-software-catalogs/"
PACKAGES = "/api/marketplace-software-packages/"
START_TIMEOUT = 60.0
COMMAND_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT_SECONDS = 5

# Events written while a command runs; each must carry the command's context.
JOB_EVENTS = {
    "command_received",
    "catalog_created",
    "attempt_started",
    "fetch_started",
    "fetch_finished",
    "upstream_not_modified",
    "sync_finished",
    "command_succeeded",
    "command_failed",
}
# From the point the catalog row is known, lines also name it by uuid.
CATALOG_KNOWN_EVENTS = {"fetch_started", "fetch_finished", "command_succeeded", "command_failed"}

T = TypeVar("T")


@dataclass
class RunningSyncd:
    process: subprocess.Popen[bytes]
    client: httpx.Client
    workdir: Path
    env: dict[str, str]
    stderr_path: Path
    stdout_path: Path

    def syncd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "syncd.cli", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(
                f"syncd run did not stop within {STOP_TIMEOUT}s of SIGTERM"
            ) from None

    def log_lines(self) -> list[str]:
        return [line for line in self.stderr_path.read_text().splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream("synthetic") as up:
        yield up


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param(
            "services", id="postgres-rabbitmq", marks=[pytest.mark.postgres, pytest.mark.rabbitmq]
        ),
    ]
)
def running(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream
) -> Iterator[RunningSyncd]:
    """`syncd run` on the embedded default (nothing configured), or on PostgreSQL and
    RabbitMQ through SYNCD_DATABASE_URL / SYNCD_BROKER_URL."""
    workdir = tmp_path / "site"
    workdir.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    if request.param == "services":
        env["SYNCD_DATABASE_URL"] = request.getfixturevalue("pg_url")
        env["SYNCD_BROKER_URL"] = request.getfixturevalue("amqp_url")
    # A queue of this test's own: the run's vhost is shared with other tests.
    env["SYNCD_QUEUE_NAME"] = f"e2e_{secrets.token_hex(3)}"
    env.update(
        SYNCD_LOG_FORMAT="json",
        SYNCD_API_PORT=str(port),
        SYNCD_ALLOW_PRIVATE_SOURCES="true",
        SYNCD_SPACK_SOURCE=upstream.spack_url,
        SYNCD_EESSI_SOURCE=upstream.eessi_base,
        # A failure is final at once (no backoff to wait for) and lands in the dead letters.
        SYNCD_MAX_RETRIES="0",
        SYNCD_FETCH_RETRIES="0",
        SYNCD_FETCH_READ_TIMEOUT="10",
        SYNCD_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT_SECONDS),
    )
    stdout_path, stderr_path = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd.cli", "run"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False)
    run = RunningSyncd(process, client, workdir, env, stderr_path, stdout_path)
    try:

        def healthy() -> bool | None:
            if process.poll() is not None:
                raise AssertionError(f"syncd run exited early:\n{stderr_path.read_text()}")
            try:
                return client.get("/health").status_code == 200 or None
            except httpx.TransportError:
                return None

        _wait_for("GET /health", healthy, START_TIMEOUT)
        yield run
    finally:
        client.close()
        # Shown by pytest when the test failed: what the process said last.
        print("--- syncd run stderr (last 60 lines) ---")
        print("\n".join(stderr_path.read_text().splitlines()[-60:]))
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# --- helpers ----------------------------------------------------------------------------


def _metrics(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def _catalogs(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    response = client.get(CATALOGS, params={"name": name})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return [row for row in rows if row["name"] == name]


def _import(client: httpx.Client, token: str, body: dict[str, str]) -> None:
    response = client.post(
        CATALOGS + "import_catalog/", json=body, headers={"Authorization": f"Token {token}"}
    )
    assert response.status_code == 202, response.text


# --- the test ---------------------------------------------------------------------------


def test_run_imports_serves_reports_and_logs(running: RunningSyncd, upstream: FakeUpstream) -> None:
    client = running.client
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}

    created = running.syncd("token", "create", "--staff", "--name", "e2e")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()

    before = _metrics(client)

    # 1. A successful import, read back through the API.
    _import(client, token, {"name": "Spack"})

    def imported() -> dict[str, Any] | None:
        rows = _catalogs(client, "Spack")
        return rows[0] if rows and rows[0]["last_successful_update"] else None

    spack = _wait_for("the Spack import", imported, COMMAND_TIMEOUT)
    assert spack["update_errors"] in ("", None)
    detail = client.get(f"{CATALOGS}{spack['uuid']}/")
    assert detail.status_code == 200 and detail.json()["uuid"] == spack["uuid"]
    packages = client.get(PACKAGES, params={"catalog_uuid": spack["uuid"], "page_size": 100})
    assert packages.status_code == 200, packages.text
    expected_packages, _ = upstream_data.spack_counts(upstream_data.spack_document())
    assert int(packages.headers["X-Result-Count"]) == expected_packages
    assert {p["catalog_uuid"] for p in packages.json()} <= {spack["uuid"]}

    spack_label = f"Spack/{spack['version']}"
    after_import = _wait_for(
        "the import's metrics",
        lambda: (
            m
            if _value(m := _metrics(client), "syncd_commands_succeeded_total", catalog=spack_label)
            else None
        ),
        10,
    )
    delta = _delta(before, after_import)
    assert delta("syncd_commands_published_total", actor="import_catalog") == 1
    assert delta("syncd_commands_received_total", actor="import_catalog") == 1
    assert delta("syncd_commands_succeeded_total", actor="import_catalog", catalog=spack_label) == 1
    assert delta("syncd_commands_failed_total") == 0
    assert delta("syncd_rows_written_total", operation="created") > expected_packages
    assert delta("syncd_sync_duration_seconds_count") == 1
    last_success = _value(
        after_import, "syncd_catalog_last_success_timestamp_seconds", catalog=spack_label
    )
    assert abs(time.time() - last_success) < 120
    queue = running.env["SYNCD_QUEUE_NAME"]
    assert _value(after_import, "syncd_dead_letter_queue_depth", queue=queue) == 0

    # 2. A failed first import: upstream answers 500; the command fails for good (no retries
    #    configured) before any catalog row exists (an import downloads before it creates
    #    the row: no empty catalog is left behind), the log and the metrics say why, and the
    #    message is dead-lettered.
    upstream.fault(upstream.EESSI_SOFTWARE, "500")
    _import(client, token, {"name": "EESSI", "version": "2023.06"})

    eessi_label = "EESSI/2023.06"
    after_failure = _wait_for(
        "the dead letter of the failed EESSI import",
        lambda: (
            m
            if _value(m := _metrics(client), "syncd_dead_letter_queue_depth", queue=queue) == 1
            else None
        ),
        COMMAND_TIMEOUT,
    )
    assert _catalogs(client, "EESSI") == []
    delta = _delta(after_import, after_failure)
    failed_samples = [
        dict(labels)
        for (name, labels), value in after_failure.items()
        if name == "syncd_commands_failed_total" and value
    ]
    assert failed_samples and all(s["will_retry"] == "false" for s in failed_samples)
    # No catalog row exists, so the failure carries the empty catalog label (labels come only
    # from catalog rows: a message's words never make a series).
    assert delta("syncd_commands_failed_total", actor="import_catalog", catalog="") == 1
    assert delta("syncd_commands_received_total", actor="import_catalog") == 1
    assert delta("syncd_commands_succeeded_total") == 0
    assert (
        _value(after_failure, "syncd_catalog_last_success_timestamp_seconds", catalog=eessi_label)
        == 0
    )
    # The earlier success is untouched by the failure.
    assert _value(
        after_failure, "syncd_catalog_last_success_timestamp_seconds", catalog=spack_label
    ) == pytest.approx(last_success)

    # 3. A clean stop, and logs an operator's collector can read.
    assert running.stop() == 0
    assert running.stdout_path.read_text() == ""
    _check_logs(running.log_lines(), spack)


def _delta(
    before: dict[tuple[str, frozenset[tuple[str, str]]], float],
    after: dict[tuple[str, frozenset[tuple[str, str]]], float],
) -> Callable[..., float]:
    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    return delta


def _check_logs(lines: list[str], spack: dict[str, Any]) -> None:
    assert lines, "syncd run printed no log lines"
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"log line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict), line
        for key in ("timestamp", "level", "event", "role"):
            assert key in record, f"log line {number} has no {key}: {line}"
        assert record["role"] == "run", line
        records.append(record)

    events = [r["event"] for r in records]
    for expected in ("run_started", "worker_started", "scheduler_started", "run_stopped"):
        assert expected in events, f"no {expected} event"
    assert any(r.get("logger") == "uvicorn.access" for r in records)

    jobs = [r for r in records if r["event"] in JOB_EVENTS]
    # An import that would create its catalog fetches before the row exists: its fetch lines
    # name the catalog through their message's other lines, and a first import that failed
    # in that fetch has no catalog at all.
    failure = next(r for r in jobs if r["event"] == "command_failed")
    uuid_of_message = {r["message_id"]: r["catalog_uuid"] for r in jobs if r.get("catalog_uuid")}
    assert failure["message_id"] not in uuid_of_message, "the failed first import made a row"
    by_catalog: dict[str, set[str]] = {}
    for record in jobs:
        for key in ("message_id", "actor", "catalog_name"):
            assert record.get(key), f"{record['event']} line without {key}: {record}"
        assert record["actor"] == "import_catalog"
        if record["event"] in CATALOG_KNOWN_EVENTS:
            uuid = record.get("catalog_uuid") or uuid_of_message.get(record["message_id"])
            uuid = uuid or f"no row: message {record['message_id']}"
            by_catalog.setdefault(uuid, set()).add(record["event"])
    assert {"fetch_started", "fetch_finished", "command_succeeded"} <= by_catalog[spack["uuid"]]
    assert {"fetch_started", "command_failed"} <= by_catalog[
        f"no row: message {failure['message_id']}"
    ]
    assert set(by_catalog) == {spack["uuid"], f"no row: message {failure['message_id']}"}
    assert failure["will_retry"] is False
    assert failure["catalog_name"] == "EESSI"
    assert failure["error_class"] and failure["error"]
    assert len({r["message_id"] for r in jobs}) == 2  # one id per command, on all its lines


def test_run_sends_catalog_events(running: RunningSyncd) -> None:
    """catalog.created and catalog.deleted through `syncd run`'s API: on the embedded default
    one `event_out` log line each (the events stay in the outbox), with RabbitMQ published to
    the `syncd.events` exchange by `syncd run`'s relay."""
    from tests.support.events import bind_queue, check_body, take

    amqp = running.env.get("SYNCD_BROKER_URL", "")
    queue = f"e2e_events_{secrets.token_hex(3)}"
    if amqp:
        bind_queue(amqp, "syncd.events", queue)
    token = running.syncd("token", "create", "--staff", "--name", "e2e").stdout.strip()
    headers = {"Authorization": f"Token {token}"}
    created = running.client.post(CATALOGS, json={"name": "Local", "version": "1"}, headers=headers)
    assert created.status_code == 201, created.text
    uuid = created.json()["uuid"]
    deleted = running.client.delete(f"{CATALOGS}{uuid}/", headers=headers)
    assert deleted.status_code == 204

    def bodies() -> list[dict[str, Any]] | None:
        if amqp:
            found = [b for _, _, b in take(amqp, queue, 0, timeout=0)]
            seen.extend(b for b in found if b["catalog"]["uuid"] == uuid)
        else:
            lines = [json.loads(line) for line in running.log_lines() if line.startswith("{")]
            seen[:] = [e["body"] for e in lines if e.get("event") == "event_out"]
        return seen if len(seen) >= 2 else None

    seen: list[dict[str, Any]] = []
    events = _wait_for("the two catalog events", bodies, COMMAND_TIMEOUT)
    assert [e["type"] for e in events] == ["catalog.created", "catalog.deleted"]
    for event in events:
        check_body(event)
        assert event["catalog"] == {"uuid": uuid, "name": "Local", "version": "1"}
    # Read from the database at scrape time: 0 once the relay marked both (the log marks none).
    expected = 0 if amqp else 2

    def backlog() -> float | None:
        value = _value(_metrics(running.client), "syncd_events_outbox_backlog")
        return value if value == expected else None

    _wait_for(f"syncd_events_outbox_backlog {expected}", backlog, COMMAND_TIMEOUT)
