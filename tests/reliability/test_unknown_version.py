"""A mistyped version makes no catalog: the API refuses what it can tell at request time
(400), and the worker refuses what it cannot (a request naming its own source) before it
creates a row, with an `import_refused` log line. A retry with the right version then works.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.db.tables import Catalog
from syncd.tokens import create_token
from tests.reliability.harness import (
    PROCESS_TEST,
    ApiServer,
    command_env,
    running,
    wait_consumers,
    wait_until,
    worker_process,
)
from tests.reliability.readers import CATALOGS
from tests.reliability.results import CaseRecord
from tests.support.fake_upstream import FakeUpstream

pytestmark = [*PROCESS_TEST, pytest.mark.timeout(180)]

MISTYPED = [f"19{n:02d}.01" for n in range(20)]


def _catalogs(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Catalog)).scalar_one())
    finally:
        engine.dispose()


def test_mistyped_version_makes_no_catalog(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("import_unknown_version")
    engine = make_engine(pg_url)
    with session_scope(make_session_factory(engine)) as session:
        token = create_token(session, name="rel-version", is_staff=True)[1]
    engine.dispose()
    with FakeUpstream("sample") as up:
        queue, env = command_env(pg_url, amqp_url, "rel_version", eessi_source=up.eessi_base)
        api = ApiServer(env, logs / "api.log")
        worker = worker_process(env, logs / "worker.log")
        headers = {"Authorization": f"Token {token}"}
        with running(worker), running(api.process):
            api.wait_ready()
            with httpx.Client(base_url=api.base_url, headers=headers, timeout=30) as client:
                wait_consumers(amqp_url, queue)
                url = f"{CATALOGS}import_catalog/"
                # 1. The default upstream: the API can tell at once.
                refused = client.post(url, json={"name": "EESSI", "version": "1999.01"})
                api_logged = api.process.wait_event("import_refused", timeout=10)
                # 2. A source of the request's own: only the worker can tell.
                accepted = [
                    client.post(
                        url, json={"name": "EESSI", "version": v, "source": up.eessi_base}
                    ).status_code
                    for v in MISTYPED
                ]
                refusals = worker.wait_event("import_refused", timeout=90, count=len(MISTYPED))
                rows_after_mistyped = _catalogs(pg_url)
                # 3. The retry with the right version is not "already exists".
                retry = client.post(url, json={"name": "EESSI", "version": "2023.06"})
                worker.wait_event("command_succeeded", timeout=90)
                done = wait_until(
                    lambda: [c for c in client.get(CATALOGS).json() if c["package_count"] > 0],
                    timeout=30,
                    what="the retried import's catalog",
                )

    record.try_(
        "import_catalog of EESSI 1999.01 through the API (default upstream: the fake "
        f"upstream's real sample, which offers 2023.06 and 2025.06); then {len(MISTYPED)} "
        "mistyped versions with the request's own source (202: only the worker can check); "
        "then the right version"
    )
    record.figure("API answer to 1999.01", f"{refused.status_code} {refused.json()}")
    record.figure("own-source requests accepted (202)", accepted.count(202))
    record.figure("worker import_refused lines", len(refusals))
    record.figure("catalog rows after the mistyped imports", rows_after_mistyped)
    record.figure("retry with 2023.06", f"{retry.status_code}, {done[0]['package_count']} packages")
    record.summarize(
        f"1999.01 refused by the API (400, offered versions named); {len(MISTYPED)} mistyped "
        f"versions the worker had to check: {rows_after_mistyped} catalogs created, "
        f"{len(refusals)} import_refused lines; the retry with 2023.06 imported"
    )

    assert refused.status_code == 400, refused.text
    assert "2023.06" in refused.json()["version"][0]
    assert api_logged[0]["version"] == "1999.01"
    assert accepted == [202] * len(MISTYPED)
    assert {e["version"] for e in refusals} == set(MISTYPED)
    assert all("no EESSI stack version" in e["reason"] for e in refusals)
    assert rows_after_mistyped == 0
    assert retry.status_code == 202, retry.text
    assert len(done) == 1 and done[0]["version"] == "2023.06"
    record.hold(
        "no catalog row for any mistyped version; the API's 400 and both processes' "
        "import_refused lines name the version and what upstream offers; the right version "
        "then imported (no 'already exists')"
    )
