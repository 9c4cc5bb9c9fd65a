"""`syncd token create --offering UUID` through the real console script: a token that may
manage those offerings' software catalogs (Waldur's UPDATE_OFFERING) and no other's."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from syncd.db.engine import make_engine, make_session_factory
from syncd.tokens import authenticate, may_manage_offering

SYNCD = [sys.executable, "-m", "syncd.cli"]
FIRST = uuid.UUID("5b1c0e3f7c9d4d8e9a4f2c6b8d0e1f23")
SECOND = uuid.UUID("0f9e8d7c6b5a49382716a5b4c3d2e1f0")


def _run(args: list[str], cwd: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYNCD_DATABASE_URL": db_url}
    return subprocess.run(
        [*SYNCD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_an_offering_token_manages_its_offerings_only(tmp_path: Path, db_url: str) -> None:
    created = _run(
        ["token", "create", "--name", "hpc", "--offering", str(FIRST), "--offering", SECOND.hex],
        tmp_path,
        db_url,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    engine = make_engine(db_url)
    factory: sessionmaker[Session] = make_session_factory(engine)
    try:
        with factory() as session:
            identity = authenticate(session, key)
            assert identity is not None and not identity.is_staff
            assert may_manage_offering(session, identity, FIRST)
            assert may_manage_offering(session, identity, SECOND)
            assert not may_manage_offering(session, identity, uuid.uuid4())
    finally:
        engine.dispose()
    listing = _run(["token", "list"], tmp_path, db_url)
    [line] = listing.stdout.splitlines()
    assert line.split("\t")[1] == "offering"
    assert line.split("\t")[-1] == ",".join(sorted([FIRST.hex, SECOND.hex]))

    refused = _run(["token", "create", "--offering", "nope"], tmp_path, db_url)
    assert refused.returncode == 2
    assert "not an offering uuid: 'nope'" in refused.stderr
