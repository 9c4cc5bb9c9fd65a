"""A catalog deleted through the API while a worker syncs it on PostgreSQL.

The DELETE is not held back by the sync (it takes no sync lock, and PostgreSQL checks the new
rows' foreign keys only when each COPY ends), so the sync's writes then break a foreign key.
The command must fail permanently with "the catalog was deleted meanwhile", not with the raw
foreign-key error, be dead-lettered without a retry, and have its outcome written.

The RelTest adapter holds its record stream at a gate (RELTEST_GATE): the test deletes the
catalog exactly while the sync's transaction is open and reading, then opens the gate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from syncd.config import load_settings
from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.outcomes import read_outcome
from syncd.tokens import create_token
from tests.reliability.catalogs import catalog_row
from tests.reliability.harness import (
    PROCESS_TEST,
    ApiServer,
    command_env,
    queue_state,
    running,
    wait_consumers,
    wait_until,
    worker_process,
)
from tests.reliability.plugin import ADAPTER_NAME
from tests.reliability.results import CaseRecord

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(180)]

PLUGIN = "tests.reliability.plugin"
CATALOGS = "/api/marketplace-software-catalogs/"


def test_delete_during_sync_is_a_clear_permanent_failure(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("delete_during_sync")
    gate = logs / "gate"
    queue, env = command_env(pg_url, amqp_url, "rel_delete")
    env = {**env, "RELTEST_PACKAGES": "50", "RELTEST_GATE": str(gate)}
    engine = make_engine(pg_url)
    with session_scope(make_session_factory(engine)) as session:
        _, staff = create_token(session, name="rel-delete", is_staff=True)
    api = ApiServer(env, logs / "api.log", module=PLUGIN)
    worker = worker_process(env, logs / "worker.log", module=PLUGIN)
    from syncd.broker import make_broker
    from syncd.publish import publish_import

    try:
        with running(worker):
            api.start()
            wait_consumers(amqp_url, queue, timeout=90)
            config = load_settings(env)
            broker = make_broker(config)
            try:
                message_id = publish_import(broker, config, name=ADAPTER_NAME, version="v1")
            finally:
                broker.close()
            wait_until(
                lambda: Path(f"{gate}.waiting").exists(),
                timeout=60,
                what="the sync to start reading its records",
            )
            row = catalog_row(engine, name=ADAPTER_NAME, version="v1")
            assert row is not None
            deleted = httpx.delete(
                f"{api.base_url}{CATALOGS}{row['uuid'].hex}/",
                headers={"Authorization": f"Token {staff}"},
                timeout=30,
            )
            assert deleted.status_code == 204, deleted.text
            gate.touch()  # the sync writes its rows now, into a catalog that is gone
            failed = worker.wait_event("command_failed", timeout=60)[0]
            dead = wait_until(
                lambda: queue_state(amqp_url, f"{queue}.XQ")[0],
                timeout=30,
                what="the command in the dead-letter queue",
            )
            outcome = wait_until(
                lambda: read_outcome(engine, message_id), timeout=30, what="the outcome"
            )
            retries = len(worker.events("command_failed"))
            assert worker.alive()
    finally:
        api.stop()
        engine.dispose()
    error = str(failed.get("error"))
    assert "deleted meanwhile" in error, error
    assert "foreign key" not in error, error
    assert failed.get("will_retry") is False, failed
    assert dead == 1 and retries == 1, (dead, retries)
    assert outcome.succeeded is False and "deleted meanwhile" in str(outcome.error), outcome
    record.try_(
        "an import of a 50-package catalog through a worker on PostgreSQL; the catalog "
        "deleted with the API's DELETE while the sync's transaction was open and reading "
        "its records (before its COPY ended)"
    )
    record.hold(
        "the command failed once, permanently (dead-lettered, no retry), saying the catalog "
        "was deleted meanwhile; the outcome was written with that text"
    )
    record.figure("attempts", retries)
    record.figure("dead-lettered", dead)
    record.figure("error", error)
    record.summarize(
        "deleted mid-sync: 1 attempt, dead-lettered with 'deleted meanwhile' (before: the raw "
        "foreign-key error)"
    )
