"""Where a first import's seconds go: `python bench/import_profile.py [--sources spack,eessi]`.

Per upstream, `--rounds` full imports (bench_sync's `import` scenario) into a fresh PostgreSQL
database each, and the same snapshot's rows built without a database. Printed per upstream
(the fastest round):

- the import's phases: the direct COPY (syncd/sync/direct_copy.py; within it the reading
  thread's waits for the sender, for id blocks and for the last COPYs) and the read model
  (refresh_read_model; within it each statement over 20 ms, from the engine's events);
- the reading thread's own work without a database, one process: the adapter's parsing,
  `_keep`, the versions hash, the rows' encoding (rows.py) and their COPY text form.

The two together tell which side bounds the COPY phase: the database (the reading thread
waits in `send`) or Python (the COPY is done soon after the last batch is sent). Numbers
from a shared machine swing; compare phases of one run, not runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

# Statements shorter than this are left out of the listing (set_config, lookups).
SHOWN_STATEMENT_S = 0.02


@contextmanager
def _timed(owner: Any, name: str, into: dict[str, float], label: str) -> Iterator[None]:
    """`owner.name` replaced by a wrapper adding its wall time to `into[label]`."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[label] = into.get(label, 0.0) + time.perf_counter() - started

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _ids_wait(into: dict[str, float]) -> Callable[..., int]:
    """_Ids.take counting only the calls that reserve a block (a round trip)."""
    from syncd.sync import direct_copy

    original = direct_copy._Ids.take

    def take(self: Any) -> int:
        if self._free:
            return int(self._free.pop())
        started = time.perf_counter()
        try:
            return int(original(self))
        finally:
            into["  waiting for id blocks"] = (
                into.get("  waiting for id blocks", 0.0) + time.perf_counter() - started
            )

    return take


def profile_import(source: str) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """One full import into a fresh database: phase times and the slow statements."""
    from sqlalchemy import event

    import syncd.readmodel as readmodel
    from bench.bench_sync import run_sync
    from syncd.db.engine import make_engine
    from syncd.db.migrate import upgrade
    from syncd.sync import direct_copy
    from syncd.sync import engine as sync_engine
    from tests.support.services import postgres_database

    labels = [
        "direct COPY",
        "  waiting in send",
        "  waiting for id blocks",
        "  waiting for the last COPYs",
        "read model",
        "  facets and search",
    ]
    phases = dict.fromkeys(labels, 0.0)  # printed in this order
    statements: list[tuple[float, str]] = []
    with postgres_database("syncd_profile") as url:
        upgrade(url)
        engine = make_engine(url)

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info["profile_started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            spent = time.perf_counter() - conn.info.pop("profile_started", time.perf_counter())
            if spent >= SHOWN_STATEMENT_S:
                statements.append((spent, " ".join(statement.split())[:100]))

        ids_take = direct_copy._Ids.take
        direct_copy._Ids.take = _ids_wait(phases)  # type: ignore[method-assign]
        try:
            with (
                _timed(sync_engine, "_direct_import", phases, "direct COPY"),
                _timed(direct_copy._Sender, "send", phases, "  waiting in send"),
                _timed(direct_copy._Sender, "join", phases, "  waiting for the last COPYs"),
                _timed(sync_engine, "refresh_read_model", phases, "read model"),
                _timed(readmodel, "refresh_facets", phases, "  facets and search"),
            ):
                started = time.perf_counter()
                run_sync(engine, source, "profile")
                phases["import"] = time.perf_counter() - started
        finally:
            direct_copy._Ids.take = ids_take  # type: ignore[method-assign]
            engine.dispose()
    return phases, sorted(statements, reverse=True)


def profile_rows(source: str) -> dict[str, float]:
    """The reading thread's work of a first import, without a database: what
    syncd/sync/direct_copy.py does per package, each step timed."""
    import psycopg
    from psycopg._copy_base import format_row_text
    from psycopg.adapt import Transformer

    from bench.bench_sync import load_snapshot
    from syncd.config import DEFAULT_MAX_FIELD_CHARS
    from syncd.sync.records import _keep, _kept_packages, _Staged
    from syncd.sync.rows import _package_row, _target_row, _version_row
    from syncd.sync.versions_hash import versions_hash
    from tests.support.services import PG_ADMIN_DSN

    with psycopg.connect(PG_ADMIN_DSN) as raw:  # only for the text encoder's context
        encoder = Transformer.from_context(raw)
    spent = dict.fromkeys(("parse", "_keep", "versions hash", "rows", "COPY text"), 0.0)
    clock = time.perf_counter
    started = clock()
    staged = _Staged(max_field_chars=DEFAULT_MAX_FIELD_CHARS)
    packages = iter(_kept_packages(load_snapshot(source), staged))
    out = bytearray()
    while True:
        t0 = clock()
        package = next(packages, None)
        t1 = clock()
        spent["parse"] += t1 - t0
        if package is None:
            break
        homepage, versions, _parents = _keep(staged, package)
        t2 = clock()
        versions_hash(versions, DEFAULT_MAX_FIELD_CHARS)
        t3 = clock()
        rows = [_package_row(package, homepage, len(versions), staged)]
        for index, version in enumerate(versions):
            rows.append(_version_row(package.name, version, index, staged))
            rows.extend(_target_row(package.name, version, t, staged) for t in version.targets)
        t4 = clock()
        for row in rows:  # with the columns direct_copy adds (id, uuid, stamps, parent)
            format_row_text((1, "0" * 32, "2026-01-01", "2026-01-01", 1, *row), encoder, out)
        spent["COPY text"] += clock() - t4
        spent["_keep"] += t2 - t1
        spent["versions hash"] += t3 - t2
        spent["rows"] += t4 - t3
        out.clear()
    spent["total"] = clock() - started
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sources", default="spack,eessi")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    import adapters.eessi
    import adapters.spack  # noqa: F401  (the adapters register themselves)

    for source in args.sources.split(","):
        runs = [profile_import(source) for _ in range(args.rounds)]
        phases, statements = min(runs, key=lambda run: run[0]["import"])
        print(f"{source}: full import {phases.pop('import'):.3f} s (fastest of {args.rounds})")
        for label, seconds in phases.items():
            print(f"  {label:32} {seconds:7.3f}")
        for seconds, statement in statements:
            print(f"      {seconds:6.3f}  {statement}")
        rows = min((profile_rows(source) for _ in range(args.rounds)), key=lambda r: r["total"])
        print(f"{source}: the reading thread's work without a database {rows.pop('total'):.3f} s")
        for label, seconds in rows.items():
            print(f"  {label:32} {seconds:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
