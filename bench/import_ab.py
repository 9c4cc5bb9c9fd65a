"""Full imports of two checkouts side by side: `python bench/import_ab.py --before DIR`.

Each checkout imports into a database of its own, migrated by its own code, in alternating
order round by round (a, b, b, a, ...), each import in a fresh subprocess running that
checkout's `bench.bench_sync.run_sync` (the `import` scenario). Besides wall-clock time it
reads the CPU time of the PostgreSQL backends serving the import from /proc (the server runs
on this machine): on a shared machine wall time swings by +-50%, the server's CPU time of the
same statements far less. On SQLite the import's own process CPU time is the whole work.

DIR: another checkout, e.g. `git archive main | tar -x -C /tmp/x/main` with
`/tmp/x/shared` pointing at ../shared (bench_sync finds the upstream data from its path).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]


def _backends_cpu(database: str) -> dict[str, int]:
    """Clock ticks of user + system time per server process whose title names `database`."""
    found: dict[str, int] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if f" {database} ".encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    return found


def worker(source: str, url: str, catalog: str) -> dict[str, float]:
    """One import, in the checkout that PYTHONPATH names."""
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    import adapters.eessi
    import adapters.spack  # noqa: F401  (imports belong to the baseline)
    from bench.bench_sync import run_sync
    from syncd.db.engine import make_engine

    database = url.rsplit("/", 1)[1]
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    before, cpu, started = _backends_cpu(database), time.process_time(), time.perf_counter()
    rows = run_sync(engine, source, catalog)
    wall, client = time.perf_counter() - started, time.process_time() - cpu
    after = _backends_cpu(database)
    engine.dispose()
    ticks = sum(value - before.get(pid, 0) for pid, value in after.items())
    server = ticks / os.sysconf("SC_CLK_TCK") if url.startswith("postgresql") else 0.0
    return {"wall": wall, "server_cpu": server, "client_cpu": client, "rows": rows}


def _run(checkout: Path, *args: str) -> str:
    env = os.environ | {"PYTHONPATH": str(checkout)}
    proc = subprocess.run(
        [sys.executable, *args], cwd=checkout, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{checkout}: {args[:3]} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def _migrate(checkout: Path, url: str) -> None:
    _run(checkout, "-c", f"from syncd.db.migrate import upgrade; upgrade({url!r})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", nargs=3, metavar=("SOURCE", "URL", "CATALOG"))
    parser.add_argument("--before", type=Path, help="the other checkout")
    parser.add_argument("--after", type=Path, default=HERE)
    parser.add_argument("--sources", default="spack,eessi")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    if args.before is None:
        parser.error("--before is required")
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        urls = _databases(stack, args.backend, sides)
        for rnd in range(args.rounds):
            order = list(sides) if rnd % 2 == 0 else list(reversed(sides))
            for source in args.sources.split(","):
                for side in order:
                    url = urls[side]
                    if args.backend == "sqlite":  # an empty file per import
                        url = f"{url}-{source}-{rnd}.sqlite3"
                        _migrate(sides[side], url)
                    line = _run(
                        sides[side], str(Path(__file__).resolve()), "--worker", source, url,
                        f"ab-{rnd}",
                    )  # fmt: skip
                    found = json.loads(line)
                    results.setdefault((source, side), []).append(found)
                    print(f"round {rnd} {source:5} {side:6} " + _format(found), flush=True)
    _summary(results, args.sources.split(","))
    return 0


def _databases(stack: ExitStack, backend: str, sides: dict[str, Path]) -> dict[str, str]:
    if backend == "sqlite":
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        return {side: f"sqlite:///{folder / side}" for side in sides}
    sys.path.insert(0, str(HERE))
    from tests.support.services import postgres_database

    urls = {side: stack.enter_context(postgres_database(f"syncd_ab_{side}")) for side in sides}
    for side, checkout in sides.items():
        _migrate(checkout, urls[side])
    return urls


def _format(found: dict[str, Any]) -> str:
    return " ".join(f"{k} {found[k]:.3f}" for k in ("wall", "server_cpu", "client_cpu"))


def _summary(results: dict[tuple[str, str], list[dict[str, Any]]], sources: list[str]) -> None:
    print("\nmin of the rounds (s), after/before:")
    for source in sources:
        before, after = results[(source, "before")], results[(source, "after")]
        for key in ("wall", "server_cpu", "client_cpu"):
            low_b, low_a = min(r[key] for r in before), min(r[key] for r in after)
            ratio = f"{low_a / low_b:.3f}" if low_b else "-"
            wins = sum(a[key] < b[key] for a, b in zip(after, before, strict=True))
            print(
                f"{source:5} {key:10} before {low_b:6.3f}  after {low_a:6.3f}  ratio {ratio}"
                f"  (after lower in {wins} of {len(before)} rounds)"
            )


if __name__ == "__main__":
    raise SystemExit(main())
