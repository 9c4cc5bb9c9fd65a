"""The in-process queue exists only inside `syncd run`: a process of its own on the
embedded default (no SYNCD_BROKER_URL) must not accept commands that no worker will take."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from syncd.api.app import create_app
from syncd.broker import make_publisher_broker
from syncd.config import Settings
from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.db.migrate import upgrade
from syncd.scheduler import run_scheduler
from syncd.tokens import create_token
from syncd.worker import run_worker

CATALOGS = "/api/marketplace-software-catalogs/"


@pytest.fixture
def embedded(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'syncd.sqlite3'}"
    upgrade(url)
    return Settings(database_url=url)


@pytest.mark.parametrize(("command", "run"), [("worker", run_worker), ("scheduler", run_scheduler)])
def test_worker_and_scheduler_refuse_to_start(
    embedded: Settings, command: str, run: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(embedded) == 2  # type: ignore[operator]
    error = capsys.readouterr().err
    assert f"`syncd {command}` needs SYNCD_BROKER_URL" in error
    assert "only exists inside `syncd run`" in error


def test_api_alone_refuses_commands_and_serves_reads(embedded: Settings) -> None:
    engine = make_engine(embedded.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            _, key = create_token(session, name="staff", is_staff=True)
        app = create_app(embedded, engine=engine, broker=make_publisher_broker(embedded))
        with TestClient(app) as client:
            answer = client.post(
                f"{CATALOGS}import_catalog/",
                json={"name": "EESSI", "version": "2023.06"},
                headers={"Authorization": f"Token {key}"},
            )
            assert answer.status_code == 503
            assert "SYNCD_BROKER_URL is empty" in answer.json()["detail"]
            assert answer.headers["Retry-After"]
            assert client.get(CATALOGS).status_code == 200
            assert client.get("/ready").status_code == 200
    finally:
        engine.dispose()
