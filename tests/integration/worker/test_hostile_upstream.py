"""Hostile upstream files through the whole worker path: a message on the real RabbitMQ, the
worker's actor, the real Spack adapter and Fetcher against the fake upstream, PostgreSQL.

A file the same bytes would fail again is dead-lettered at its first attempt (one download,
no retry), with its reason in update_errors and the previous catalog intact.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from sqlalchemy import Engine

from adapters.base import load_adapters
from adapters.fetch import Fetcher
from syncd.broker import make_broker, worker_resources
from syncd.config import Settings
from syncd.publish import publish_import, publish_update
from syncd.worker import start_in_process
from tests.integration.worker.fakes import catalog_row, wait_until
from tests.integration.worker.rabbit import message_count
from tests.reliability.catalogs import fingerprint
from tests.support.fake_upstream import FakeUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

WAIT = 30.0


@dataclasses.dataclass
class Running:
    up: FakeUpstream
    settings: Settings
    broker: dramatiq.Broker


@pytest.fixture
def running(mq_settings: Settings, pg_engine: Engine) -> Iterator[Running]:
    """A worker in this process with the real adapters and fetcher, aimed at a fake upstream."""
    with FakeUpstream() as up:
        settings = dataclasses.replace(
            mq_settings,
            spack_source=up.spack_url,
            eessi_source=up.eessi_base,
            fetch_retries=0,
            fetch_read_timeout=2.0,
            fetch_max_bytes=4 * 1024 * 1024,
        )
        fetcher = Fetcher(settings)
        broker = make_broker(settings)
        worker_resources(broker).provide(adapters=load_adapters(settings), fetcher=fetcher)
        worker = start_in_process(settings, broker, pg_engine)
        try:
            yield Running(up, settings, broker)
        finally:
            worker.stop(timeout=10_000)
            broker.close()
            fetcher.close()


def _synced(engine: Engine) -> Any:
    row = catalog_row(engine, name="Spack")
    if row is None or row.last_successful_update is None:
        return None
    return row if row.last_successful_update >= row.last_update_attempt else None


@pytest.mark.parametrize(
    ("fault", "options", "words"),
    [
        ("deep_nesting", {"depth": 100}, "more than 32 levels deep"),
        ("gzip_body", {"padding": 16 * 1024 * 1024}, "unpacks to more than the limit"),
    ],
)
def test_a_hostile_file_is_dead_lettered_at_its_first_attempt(
    running: Running, pg_engine: Engine, fault: str, options: dict[str, Any], words: str
) -> None:
    up, settings = running.up, running.settings
    publish_import(running.broker, settings, name="Spack")
    imported = wait_until(lambda: _synced(pg_engine), WAIT)
    before = fingerprint(pg_engine, imported.id)

    doc = json.loads(up.content(up.SPACK))
    doc["packages"][sorted(doc["packages"])[0]]["summary"] = "changed upstream"
    up.set_file(up.SPACK, json.dumps(doc).encode())
    up.fault(up.SPACK, fault, **options)
    up.reset_requests()
    publish_update(running.broker, settings, catalog_uuid=imported.uuid.hex)

    wait_until(lambda: message_count(settings.broker_url, f"{settings.queue_name}.XQ") == 1, WAIT)
    row = catalog_row(pg_engine, id=imported.id)
    assert words in row.update_errors, row.update_errors
    assert not row.update_errors.endswith("(will retry)")
    assert row.last_successful_update == imported.last_successful_update
    assert len(up.requests_for(up.SPACK)) == 1  # one attempt, no retry
    assert fingerprint(pg_engine, imported.id) == before
