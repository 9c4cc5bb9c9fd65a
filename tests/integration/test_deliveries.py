"""syncd.deliveries and service.record_abandoned on SQLite and PostgreSQL: what the worker
uses to stop a message that kills every worker that runs it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select

from syncd.db.process_tables import MessageDelivery
from syncd.db.tables import Catalog
from syncd.deliveries import RETENTION, count_death, forget_deaths
from syncd.service import record_abandoned

NOW = datetime.now(UTC)


def test_deaths_are_counted_per_message_and_forgotten(engine: Engine) -> None:
    assert [count_death(engine, "m-1") for _ in range(3)] == [1, 2, 3]
    assert count_death(engine, "m-2") == 1
    forget_deaths(engine, "m-1")
    assert count_death(engine, "m-1") == 1  # a redriven message starts afresh
    assert count_death(engine, "m-2") == 2


def test_rows_older_than_the_retention_are_dropped(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(MessageDelivery).values(
                message_id="old", deaths=2, last_seen_at=NOW - RETENTION - timedelta(hours=1)
            )
        )
    count_death(engine, "new")
    with engine.connect() as conn:
        assert conn.execute(select(MessageDelivery.message_id)).scalars().all() == ["new"]


def _catalog(engine: Engine, version: str, *, succeeded: bool) -> str:
    """A Spack catalog row; its attempt finished (succeeded) or is still "running"."""
    new_uuid = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            insert(Catalog).values(
                uuid=new_uuid,
                name="Spack",
                version=version,
                catalog_type="source_package",
                last_update_attempt=NOW,
                last_successful_update=NOW if succeeded else None,
                update_errors="",
            )
        )
    return new_uuid.hex


def _errors(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.version: r.update_errors for r in conn.execute(select(Catalog))}


def test_an_update_writes_update_errors_on_the_row_it_names(engine: Engine) -> None:
    done = _catalog(engine, "v1", succeeded=True)
    _catalog(engine, "v2", succeeded=True)
    assert record_abandoned(engine, "update_catalog", {"catalog_uuid": done}, "died 4 times")
    assert _errors(engine) == {"v1": "died 4 times", "v2": ""}
    unknown = {"catalog_uuid": uuid.uuid4().hex}
    assert not record_abandoned(engine, "update_catalog", unknown, "x")


def test_an_import_writes_update_errors_on_its_unfinished_row(engine: Engine) -> None:
    _catalog(engine, "v1", succeeded=True)
    _catalog(engine, "v2", succeeded=False)  # the attempt the killed worker left behind
    assert record_abandoned(engine, "import_catalog", {"name": "spack"}, "died 4 times")
    assert _errors(engine) == {"v1": "", "v2": "died 4 times"}
    # A named version whose last attempt finished is not the one that killed the worker.
    assert not record_abandoned(engine, "import_catalog", {"name": "Spack", "version": "v1"}, "x")
    assert not record_abandoned(engine, "import_catalog", {"name": "EESSI"}, "x")
