"""PostgreSQL restarted while a worker writes a catalog.

The full Spack import runs on a PostgreSQL cluster of the suite's own; once the worker is
writing, the cluster is restarted (`pg_ctl restart -m fast`: every session is ended, every
open transaction rolled back). The attempt must fail cleanly (the worker process lives on
and schedules a retry), the retry must succeed once the database is back, the result must
equal a clean import, and an API reader must never see a half-written catalog.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from syncd.config import load_settings
from syncd.db.engine import make_engine
from tests.reliability.catalogs import catalog_row, fingerprint
from tests.reliability.conftest import Reference
from tests.reliability.harness import (
    PROCESS_TEST,
    ApiPoller,
    ApiServer,
    command_env,
    queue_state,
    syncd_env,
    wait_until,
    worker_process,
)
from tests.reliability.private_services import PrivatePostgres
from tests.reliability.readers import ABSENT, CATALOGS, PACKAGES, catalog_probe, partial_states
from tests.reliability.results import CaseRecord

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(300)]

DOWN_SECONDS = 3.0


def _long_transactions(server: PrivatePostgres, url: str) -> int:
    """Transactions open for more than 0.3 s in the test's database (the sync's write)."""
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND state IN ('active', 'idle in transaction')"
            " AND now() - xact_start > interval '300 milliseconds'",
            (dbname,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_postgres_restarted_during_sync(
    private_pg: PrivatePostgres,
    private_pg_url: str,
    amqp_url: str,
    spack_reference: Reference,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    record = reliability("postgres_restart")
    queue, env = command_env(
        private_pg_url, amqp_url, "rel_pg", min_backoff_ms=1000, max_backoff_ms=4000, max_retries=10
    )
    api = ApiServer(env, logs / "api.log").start()
    poller = ApiPoller(api.base_url, catalog_probe("Spack"), interval=0.05)
    worker = worker_process(env, logs / "worker.log")
    reference = spack_reference.fingerprint
    try:
        worker.start()
        poller.start()
        from syncd.broker import make_broker
        from syncd.publish import publish_import

        settings = load_settings(env)
        broker = make_broker(settings)
        publish_import(broker, settings, name="Spack", source=spack_reference.source)
        broker.close()
        worker.wait_event("fetch_finished", timeout=120)
        # Restart while the sync's transaction is open (it has been for a moment: the API's
        # reads are far shorter), at a random point a little later.
        wait_until(
            lambda: _long_transactions(private_pg, private_pg_url) > 0,
            timeout=60,
            interval=0.05,
            what="the sync's write transaction",
        )
        time.sleep(random.uniform(0.0, 0.3) * spack_reference.seconds)
        open_at_restart = _long_transactions(private_pg, private_pg_url)
        in_flight = not worker.events("command_succeeded")
        restart_began = time.monotonic()
        private_pg.restart(down_seconds=DOWN_SECONDS, mode="fast")
        restart_seconds = time.monotonic() - restart_began
        polls_at_restart = poller.polls
        succeeded = worker.wait_event("command_succeeded", timeout=180)
        wait_until(
            lambda: any(s != ABSENT and s[1] == reference.counts for s in poller.distinct_states()),
            timeout=60,
            what="the API reader to see the complete catalog",
        )
        polls_after = poller.polls - polls_at_restart
        worker_alive = worker.alive()
        api_alive = api.process.alive()
    finally:
        poller.stop()
        worker.stop()
        api.stop()

    engine = make_engine(private_pg_url)
    try:
        row = catalog_row(engine, name="Spack")
        assert row is not None
        final = fingerprint(engine, row["id"])
    finally:
        engine.dispose()
    failed = worker.events("command_failed")
    dead, _ = queue_state(amqp_url, f"{queue}.XQ")
    partial = partial_states(poller.distinct_states(), [(0, 0, 0), reference.counts])
    record.try_(
        f"`pg_ctl restart -m fast` of the database ({DOWN_SECONDS:g} s down) while one worker "
        f"wrote the full Spack catalog ({reference.summary()}); an API reader polling throughout"
    )
    record.figure("restart took (s)", round(restart_seconds, 1))
    record.figure("attempts failed", len(failed))
    record.figure("retries scheduled", sum(1 for e in failed if e.get("will_retry")))
    record.figure("first failure", str(failed[0].get("error", ""))[:200] if failed else "none")
    record.figure("attempt that succeeded (retries)", succeeded[0].get("retries"))
    record.figure("reader polls / errors", f"{poller.polls} / {poller.errors}")
    record.figure("reader errors while the database was down", dict(poller.error_kinds))
    record.figure("partial states seen", len(partial))
    record.figure("equals clean import", final == reference)
    record.summarize(
        f"{len(failed)} attempts failed (transient), then the retry succeeded; equals a clean "
        f"import: {'yes' if final == reference else 'NO'}; reader: {poller.polls} polls, "
        f"{len(partial)} partial states"
    )

    assert in_flight and open_at_restart, "no sync was writing at the restart; nothing was tested"
    assert failed, "no attempt failed: the restart did not hit the sync"
    assert all(e.get("will_retry") for e in failed), [e.get("error") for e in failed]
    assert worker_alive and worker.starts == 1, "the worker died; it must survive the database"
    assert api_alive and polls_after > 0, "the API did not recover by itself"
    assert final == reference, f"after restart: {final.summary()}; clean: {reference.summary()}"
    assert row["update_errors"] == "", row["update_errors"]
    assert dead == 0, f"{dead} dead letters"
    assert not partial, f"the API reader saw partial catalogs: {sorted(partial, key=str)[:5]}"
    record.hold(
        "the attempt failed with a transient database error and was retried; the retry "
        "succeeded and equals a clean import; the worker and the API recovered by themselves; "
        "the reader never saw a half-written catalog"
    )


def test_api_answers_503_while_the_database_is_down(
    private_pg: PrivatePostgres,
    private_pg_url: str,
    logs: Path,
    reliability: Callable[[str], CaseRecord],
) -> None:
    """A database outage is temporary: the API says so (503, DRF-shaped body), as it does
    when the queue is down, instead of a bare 500 with a traceback per request; and it
    serves again by itself once the database is back."""
    record = reliability("api_database_down")
    # No micro-cache: this case is about what the API says when it must ask the database.
    env = syncd_env(database_url=private_pg_url, api_cache_seconds=0)
    api = ApiServer(env, logs / "api.log").start()
    paths = [CATALOGS, PACKAGES, f"{CATALOGS}{'0' * 32}/"]
    answers: dict[str, str] = {}
    try:
        private_pg.stop("fast")
        try:
            for path in paths:
                r = httpx.get(api.base_url + path, timeout=30)
                answers[path] = f"{r.status_code} {r.headers.get('content-type', '')}"
                body_ok = r.headers.get("content-type", "").startswith("application/json")
                answers[path] += "" if body_ok else f" {r.text[:40]!r}"
        finally:
            private_pg.start()
        recovered = wait_until(
            lambda: httpx.get(api.base_url + CATALOGS, timeout=10).status_code == 200,
            timeout=30,
            what="the API to serve again",
        )
    finally:
        api.stop()
    record.try_(f"GET {', '.join(paths)} while the API's PostgreSQL was stopped; then started")
    record.figure("answers while down", answers)
    record.figure("served again after the restart", bool(recovered))
    record.summarize(
        "while down: " + "; ".join(f"{p} -> {a.split()[0]}" for p, a in answers.items())
    )
    wrong = {p: a for p, a in answers.items() if not a.startswith("503 application/json")}
    assert not wrong, f"while the database was down the API answered (want 503 + JSON): {wrong}"
    record.hold("503 with a JSON detail while the database was down; 200 again after")
