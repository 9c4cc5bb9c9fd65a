"""`syncd migrate` and `syncd token` through the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from syncd.db.engine import make_engine, make_session_factory
from syncd.tokens import authenticate

SYNCD = [sys.executable, "-m", "syncd.cli"]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNCD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_on_embedded_default_creates_sqlite_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    first = _run(["migrate"], tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "syncd.sqlite3").exists()
    second = _run(["migrate"], tmp_path, env)
    assert second.returncode == 0, second.stderr


def test_token_create_prints_a_working_key(tmp_path: Path, db_url: str) -> None:
    env = {**os.environ, "SYNCD_DATABASE_URL": db_url}
    result = _run(["token", "create", "--staff", "--name", "ci"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert len(key) == 40
    engine = make_engine(db_url)
    factory: sessionmaker[Session] = make_session_factory(engine)
    with factory() as session:
        identity = authenticate(session, key)
        assert identity is not None and identity.is_staff and identity.name == "ci"
        assert authenticate(session, key + "x") is None
    listing = _run(["token", "list"], tmp_path, env)
    assert "ci" in listing.stdout and key not in listing.stdout
    revoked = _run(["token", "revoke", str(identity.id)], tmp_path, env)
    assert revoked.returncode == 0
    with factory() as session:
        assert authenticate(session, key) is None
    engine.dispose()


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "SYNCD_API_PORT": "eighty"}
    result = _run(["migrate"], tmp_path, env)
    assert result.returncode == 2
    assert "SYNCD_API_PORT" in result.stderr
