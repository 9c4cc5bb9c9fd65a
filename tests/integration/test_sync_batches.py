"""One package far larger than a batch is written in bounded batches on both write paths, so
an import's memory does not grow with the largest package (bench/bench_memory.py measures
the memory itself)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select

import syncd.sync.direct_copy as direct_copy
import syncd.sync.staging as staging
from syncd.db.tables import Target, Version
from syncd.sync import sync_catalog
from syncd.sync.rows import BATCH_ROWS
from tests.integration.test_sync import make_catalog
from tests.support.records import package, snapshot, target, version

VERSIONS = 3 * BATCH_ROWS


def _huge() -> list[Any]:
    return [
        package("small", version("1", target("a"))),
        package("huge", *(version(f"{i}.0", target("a"), target("b")) for i in range(VERSIONS))),
        package("after", version("1", target("a"))),
    ]


def test_a_huge_package_goes_in_bounded_batches(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []  # rows per batch (direct path) or per statement (staged path)
    original_send = direct_copy._Sender.send
    original_copy, original_many = staging._Loader._copy, staging._Loader._executemany

    def send(self: Any, batch: dict[str, bytearray]) -> None:
        sent.append(sum(bytes(data).count(b"\n") for data in batch.values()))
        original_send(self, batch)

    def copy(self: Any, table: str, rows: list[Any]) -> None:
        sent.append(len(rows))
        original_copy(self, table, rows)

    def many(self: Any, table: str, rows: list[Any]) -> None:
        sent.append(len(rows))
        original_many(self, table, rows)

    monkeypatch.setattr(direct_copy._Sender, "send", send)
    monkeypatch.setattr(staging._Loader, "_copy", copy)
    monkeypatch.setattr(staging._Loader, "_executemany", many)
    cid = make_catalog(engine)
    stats = sync_catalog(engine, cid, snapshot(_huge()))

    assert stats.versions.created == VERSIONS + 2
    assert stats.targets.created == 2 * VERSIONS + 2
    # A batch is cut inside the package: never much more than the path's batch size at once
    # (one version with its targets over), whatever the package's size. (A first import
    # COPYs larger batches than staging writes: syncd/sync/direct_copy.py.)
    assert 3 * VERSIONS > 2 * direct_copy.DIRECT_BATCH_ROWS  # the huge package spans 3+
    assert len(sent) >= 3 and max(sent) <= direct_copy.DIRECT_BATCH_ROWS + 3
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Version)) == VERSIONS + 2
        assert conn.scalar(select(func.count()).select_from(Target)) == 2 * VERSIONS + 2
    again = sync_catalog(engine, cid, snapshot(_huge()))
    assert again.rows_written == 0
