"""Real PostgreSQL databases and RabbitMQ vhosts for tests, each run its own.

Names carry the process id and a random suffix so that parallel runs on one machine do not
collide; everything created is dropped at the end of the run.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_ADMIN_DSN = os.environ.get(
    "SYNCD_TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_HOST = os.environ.get("SYNCD_TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("SYNCD_TEST_PG_USER", "postgres")
AMQP_HOST = os.environ.get("SYNCD_TEST_AMQP_HOST", "127.0.0.1")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def postgres_database(prefix: str = "syncd_test") -> Iterator[str]:
    """Create an empty database; yield its SQLAlchemy URL; drop it afterwards."""
    name = unique_name(prefix)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbitmq_vhost(prefix: str = "syncd_test") -> Iterator[str]:
    """Create a vhost for guest; yield its amqp:// URL; delete it afterwards."""
    name = unique_name(prefix)
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@{AMQP_HOST}:5672/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)
