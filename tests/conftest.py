"""Shared fixtures: a migrated database per test on SQLite and on PostgreSQL.

`db_url` is parametrized over both backends, so a data-layer test written once runs on
each. PostgreSQL gets one database per run (created, migrated, dropped) and every test
starts from empty tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from syncd.db.engine import make_engine, make_session_factory
from syncd.db.migrate import upgrade
from syncd.db.tables import Base
from tests.support.services import postgres_database, rabbitmq_vhost

UPSTREAM_DIR = Path(__file__).resolve().parents[2] / "shared" / "upstream"


@pytest.fixture(scope="session")
def upstream_dir() -> Path:
    """../shared/upstream/, the real upstream samples; tests that need it skip without it."""
    if not UPSTREAM_DIR.is_dir():
        pytest.skip(f"real upstream samples not found at {UPSTREAM_DIR}")
    return UPSTREAM_DIR


@pytest.fixture(scope="session")
def pg_url_session() -> Iterator[str]:
    with postgres_database() as url:
        upgrade(url)
        yield url


def _truncate_all(engine: Engine) -> None:
    names = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def pg_url(pg_url_session: str) -> Iterator[str]:
    """A migrated PostgreSQL database with empty tables."""
    engine = make_engine(pg_url_session)
    _truncate_all(engine)
    engine.dispose()
    yield pg_url_session


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite file of this test's own."""
    url = f"sqlite:///{tmp_path / 'syncd.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of this run's own."""
    with rabbitmq_vhost() as url:
        yield url
