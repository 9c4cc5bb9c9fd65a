"""`syncd run` on the embedded default, stopped (SIGTERM) while it holds accepted commands.

The in-process queue lives in memory: before pending_command, a command answered 202 and not
yet run was gone after a stop (no row, no log line), and the one running left its catalog
with an attempt and no outcome, reading as "running" until the next day's tick.

`syncd run` runs as a subprocess on a SQLite file with one worker thread. The fake upstream
stalls the EESSI file, so the first import (EESSI 2023.06) is surely running, waiting for
it, when the stop comes; two more imports are accepted behind it. After SIGTERM the log must
name each unfinished command, the database must still hold them, and the cut-off attempt
must read as failed ("Interrupted by shutdown"), in its catalog and in its outcome. The next
`syncd run` (upstream healthy again) must resume every one and complete it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, inspect, select, text

from syncd.config import load_settings
from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.db.migrate import upgrade
from syncd.db.process_tables import CommandOutcome
from syncd.tokens import create_token
from tests.reliability.catalogs import catalog_rows
from tests.reliability.harness import SyncdProcess, syncd_env, wait_until
from tests.reliability.private_services import free_port
from tests.reliability.results import CaseRecord
from tests.support.fake_upstream import FakeUpstream

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

IMPORT = "/api/marketplace-software-catalogs/import_catalog/"
DISCOVER = "/api/marketplace-software-catalogs/discover/"
RUNNING = {"name": "EESSI", "version": "2023.06"}
QUEUED = [{"name": "EESSI", "version": "2025.06"}, {"name": "Spack"}]
# Measured with this test on the code before pending_command (commit f2e2114): all three
# accepted commands were lost (the two queued without a trace, the running one left
# "running" and never retried).
LOST_BEFORE = 3
# How long the restarted `syncd run` gets to complete the commands; the fixed code needs a
# few seconds, the old code never completes them and the test reports what it lost.
COMPLETE_TIMEOUT = 30.0


def _catalogs(engine: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    """Every catalog row by (name, version); Spack's version is its upstream label."""
    return {(row["name"], row["version"]): row for row in catalog_rows(engine)}


def _completed(engine: Engine) -> set[str]:
    """Which accepted commands ended with their catalog imported ("EESSI 2023.06", "Spack")."""
    done = set()
    for (name, version), row in _catalogs(engine).items():
        if row["last_successful_update"] is not None:
            done.add(name if name == "Spack" else f"{name} {version}")
    return done


def _label(body: dict[str, str]) -> str:
    return " ".join(body.values())


def _pending_ids(engine: Engine) -> set[str]:
    # Read as text: the table is new, and the old code (the "before" run) has none.
    if "pending_command" not in inspect(engine).get_table_names():
        return set()
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT message_id FROM pending_command"))}


def _outcome(engine: Engine, message_id: str) -> tuple[bool, bool, str] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(CommandOutcome.succeeded, CommandOutcome.final, CommandOutcome.error).where(
                CommandOutcome.message_id == message_id
            )
        ).first()
    return None if row is None else (row.succeeded, row.final, row.error)


def test_run_keeps_accepted_commands_across_a_stop(
    tmp_path: Path, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("run_stop_pending")
    database_url = f"sqlite:///{tmp_path / 'syncd.sqlite3'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    with session_scope(make_session_factory(engine)) as session:
        _, key = create_token(session, name="staff", is_staff=True)
    headers = {"Authorization": f"Token {key}"}
    accepted = [_label(RUNNING)] + [_label(b) for b in QUEUED]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"

    with FakeUpstream("synthetic") as upstream, httpx.Client(base_url=base_url) as client:
        env = syncd_env(
            database_url=database_url,
            allow_private_sources=True,
            eessi_source=upstream.eessi_base,
            spack_source=upstream.spack_url,
            worker_threads=1,  # one running, the others queued behind it
            shutdown_timeout_seconds=1,
            scheduler_enabled=False,  # no tick may hide a lost command by redoing it
            fetch_retries=0,
            fetch_read_timeout=120,  # the stalled fetch waits for the stop
        )
        assert load_settings(env).uses_embedded_queue
        run = SyncdProcess(
            "run", env, logs / "run.log", args=("--host", "127.0.0.1", "--port", str(port))
        )

        def serving() -> bool:
            try:
                return client.get("/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            run.start()
            run.wait_event("run_started", timeout=60)
            wait_until(serving, timeout=30, what="syncd run to serve")
            # The API checks a named version against the default upstream's (cached) list:
            # listed before the upstream stalls, as an operator's discover would, so that
            # the POST does not wait for the stalled file itself.
            assert client.get(DISCOVER, headers=headers, timeout=30).status_code == 200
            upstream.fault(upstream.EESSI_SOFTWARE, "stall", delay=120)
            upstream.reset_requests()
            assert client.post(IMPORT, json=RUNNING, headers=headers).status_code == 202
            wait_until(
                lambda: upstream.requests_for(upstream.EESSI_SOFTWARE),
                timeout=30,
                what="the first import to be running (asking the stalled upstream)",
            )
            for body in QUEUED:
                answer = client.post(IMPORT, json=body, headers=headers, timeout=30)
                assert answer.status_code == 202, answer.text
            stopped_at = time.monotonic()
            exit_code = run.stop(timeout=30)
            stop_seconds = time.monotonic() - stopped_at
        finally:
            run.stop()
        unfinished = run.events("command_unfinished")
        after_stop = _catalogs(engine)
        pending_after_stop = _pending_ids(engine)
        interrupted = [e for e in unfinished if e.get("state") == "interrupted"]
        outcome_after_stop = _outcome(engine, interrupted[0]["message_id"]) if interrupted else None

        # The second start, the upstream healthy again.
        upstream.clear_faults()
        eessi_requests_before = len(upstream.requests_for(upstream.EESSI_SOFTWARE))
        try:
            run.start()
            run.wait_event("run_started", timeout=60)
            deadline = time.monotonic() + COMPLETE_TIMEOUT
            while _completed(engine) != set(accepted) and time.monotonic() < deadline:
                assert run.alive(), run.tail()
                time.sleep(0.2)
            completed = _completed(engine)
            resumed = run.events("command_resumed", since_start=True)
        finally:
            run.stop(timeout=30)
        after_restart = _catalogs(engine)
        pending_at_end = _pending_ids(engine)
        outcome_at_end = _outcome(engine, interrupted[0]["message_id"]) if interrupted else None
        retried = len(upstream.requests_for(upstream.EESSI_SOFTWARE)) - eessi_requests_before
    engine.dispose()

    lost = [label for label in accepted if label not in completed]
    record.try_(
        f"`syncd run` on a SQLite file, one worker thread: {len(accepted)} imports accepted "
        "(202), the first running (the fake upstream stalls its file), two queued behind it; "
        "SIGTERM; then `syncd run` again with the upstream healthy"
    )
    record.figure("commands accepted", len(accepted))
    record.figure("lost before (old code)", LOST_BEFORE)
    record.figure("lost after", len(lost))
    record.figure("seconds from SIGTERM to exit", round(stop_seconds, 1))
    record.summarize(
        f"{len(accepted)} commands accepted, then SIGTERM: lost before {LOST_BEFORE}, "
        f"after {len(lost)}; the cut-off attempt marked failed, then resumed"
    )

    assert exit_code == 0, run.tail()
    assert not lost, f"accepted commands lost across the stop: {lost}\n{run.tail(60)}"

    # At the stop: one line per unfinished command, all still in the database.
    ids = {e["message_id"] for e in unfinished}
    assert len(unfinished) == len(accepted) and len(ids) == len(accepted), unfinished
    assert pending_after_stop == ids, (pending_after_stop, ids)
    assert [(e["catalog_name"], e["catalog_version"]) for e in interrupted] == [
        ("EESSI", "2023.06")
    ], unfinished
    named = sorted(e.get("catalog_version", e["catalog_name"]) for e in unfinished)
    assert named == ["2023.06", "2025.06", "Spack"], unfinished
    assert all(e["actor"] == "import_catalog" for e in unfinished), unfinished
    # The cut-off attempt reads as failed, not running: its outcome says so. It was cut off
    # in its download, which an import that creates its catalog makes before the row: no
    # row, so no catalog that reads as "running" either.
    assert ("EESSI", "2023.06") not in after_stop, after_stop
    assert outcome_after_stop is not None, "no outcome for the interrupted attempt"
    assert outcome_after_stop[:2] == (False, False), outcome_after_stop  # failed, not final
    assert "Interrupted by shutdown" in outcome_after_stop[2], outcome_after_stop
    assert ("EESSI", "2025.06") not in after_stop  # never started: no row, only the pending one
    record.hold(
        "at the stop, one command_unfinished line per accepted command (message id, actor, "
        "catalog; the running one state=interrupted, the others queued); pending_command held "
        "all three; the cut-off import (in its download, before its catalog row) left no "
        "row, and its outcome read 'Interrupted by shutdown': failed, not final"
    )

    # At the restart: every one resumed under its own message id, and completed.
    assert {e["message_id"] for e in resumed} == ids, resumed
    assert resumed[0]["message_id"] == interrupted[0]["message_id"], "oldest not first"
    assert retried >= 1, "the interrupted import did not ask upstream again"
    assert after_restart[("EESSI", "2023.06")]["update_errors"] == ""
    assert outcome_at_end is not None and outcome_at_end[:2] == (True, True), outcome_at_end
    assert pending_at_end == set(), pending_at_end
    record.hold(
        "the next `syncd run` logged command_resumed for each (oldest first), ran the "
        "interrupted import again and completed all three; pending_command ended empty and "
        "the interrupted command's outcome turned to succeeded"
    )
