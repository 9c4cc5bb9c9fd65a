"""Benchmark of the HTTP API's list endpoints: `python -m bench.bench_api`.

In one run, against a PostgreSQL database of its own (created, migrated, filled with the
Spack catalog through the real adapter and syncd.sync.sync_catalog, dropped at the end):
  bare      a bare FastAPI app whose sync `def` endpoint returns a constant list (the floor)
  catalogs  GET /api/marketplace-software-catalogs/
  packages  GET /api/marketplace-software-packages/?page_size=10
  versions  GET /api/marketplace-software-versions/?page_size=10 (with --endpoints)
Each syncd endpoint is measured twice, on two syncd servers: with the response cache of
anonymous reads at its default (SYNCD_API_CACHE_SECONDS; a constant URL is nearly always a
hit) and, as `<endpoint>-nc`, with it off (every request routed and queried);
--no-cache measures only the latter, --cache-only only the former.
Both apps are served by uvicorn on 127.0.0.1, one worker each, in subprocesses of their own,
with the same uvicorn settings (no access log unless --access-log), syncd with its own
protocol class (httptools plus the header and send deadlines, as `syncd api`), the bare app
with uvicorn's choice (httptools too). The load generator is a
third process: 50 keep-alive HTTP/1.1 connections (--clients) on one asyncio loop
(--client raw, the default, a minimal client that costs little CPU) or 50 threads with
httpx (--client httpx). Targets alternate: every round runs each target once for
--seconds, in a rotated order, so the machine's noise spreads over all of them. Reported:
requests/s, p50 and p99 latency per target (all rounds pooled, and per round), CPU time
per request of the server process and of its PostgreSQL backends (from /proc), and the
ratios against the bare app of the same run: throughput (budget >= 0.60) and p99
(budget <= 1.5). The load generator and PostgreSQL share the machine's cores with the
server under test: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream"
SPACK_FULL = UPSTREAM / "spack" / "repology.full.json.gz"
SPACK_SUBSET = UPSTREAM / "spack" / "repology.subset.json"
HOST = "127.0.0.1"
BARE_PATH = "/bare"
ENDPOINTS = {
    "catalogs": "/api/marketplace-software-catalogs/",
    "packages": "/api/marketplace-software-packages/?page_size=10",
    "versions": "/api/marketplace-software-versions/?page_size=10",
}
# Extra catalog rows beside the imported one, so that the catalogs page has 10 items as a
# deployment with a few EESSI stacks and Spack releases would (their package lists are
# empty: only the catalogs endpoint reads them).
EXTRA_CATALOGS = 9
MAX_REQUESTS_PER_ROUND = 1_000_000
REQUEST_TIMEOUT = 30.0
BUDGET_THROUGHPUT = 0.60
BUDGET_P99 = 1.5

# What the bare endpoint returns: ten small objects, a constant.
BARE_ITEMS = [{"uuid": f"{i:032x}", "name": f"item-{i}", "version": "1.0"} for i in range(10)]


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------
def spack_source(data: str, workdir: Path) -> tuple[str, str]:
    """(file:// URL of the Spack repology file to import, a label for the output)."""
    if data in ("auto", "full") and SPACK_FULL.exists():
        return SPACK_FULL.as_uri(), f"Spack {SPACK_FULL.name}"
    if data in ("auto", "subset") and SPACK_SUBSET.exists():
        return SPACK_SUBSET.as_uri(), f"Spack {SPACK_SUBSET.name}"
    if data in ("full", "subset"):
        raise SystemExit(f"{UPSTREAM}: no Spack {data} file")
    from tests.support.upstream_data import spack_document

    path = workdir / "repology.synthetic.json"
    path.write_text(json.dumps(spack_document()))
    return path.as_uri(), "synthetic Spack data (tests/support/upstream_data.py)"


def fill(url: str, source: str) -> dict[str, int]:
    """Import the Spack file into the database at `url` through the Spack adapter and
    sync_catalog; add EXTRA_CATALOGS catalog rows. Returns the row counts."""
    from dataclasses import replace

    import structlog
    from sqlalchemy import func, insert, select

    from adapters.fetch import Fetcher
    from adapters.spack import SpackAdapter
    from syncd.config import Settings
    from syncd.db.engine import make_engine
    from syncd.db.tables import Catalog, Package, Target, Version
    from syncd.sync import sync_catalog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40),  # errors only
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    settings = Settings(database_url=url, allow_file_sources=True)
    fetcher = Fetcher(settings)
    snap = SpackAdapter(settings).fetch_snapshot(fetcher, source=source)
    if snap is None:
        raise RuntimeError("the Spack adapter answered 'not modified'")
    info = snap.catalog
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            values = {
                "name": info.name,
                "catalog_type": str(info.catalog_type),
                "source_url": info.source_url,
                "description": info.description,
                "metadata_": info.metadata,
            }
            catalog_id = conn.execute(
                insert(Catalog).values(version=info.version, **values)
            ).inserted_primary_key[0]  # type: ignore[index]
            for n in range(EXTRA_CATALOGS):
                conn.execute(insert(Catalog).values(version=f"bench-{n}", **values))
        sync_catalog(engine, int(catalog_id), replace(snap, catalog=info))
        # Fresh statistics, as autovacuum would have them a minute after a real import.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        with engine.connect() as conn:
            return {
                table.__tablename__: int(conn.scalar(select(func.count()).select_from(table)) or 0)
                for table in (Catalog, Package, Version, Target)
            }
    finally:
        engine.dispose()
        fetcher.close()


# ---------------------------------------------------------------------------------------
# Servers (each in a subprocess of its own)
# ---------------------------------------------------------------------------------------
def bare_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get(BARE_PATH)
    def bare() -> list[dict[str, str]]:
        return BARE_ITEMS

    return app


def serve(kind: str, url: str, port: int, access_log: bool) -> None:
    """Serve the bare app or syncd's on 127.0.0.1:`port` with one uvicorn worker."""
    import uvicorn

    from syncd.config import Settings

    cache = {} if kind == "syncd" else {"api_cache_seconds": 0.0}
    bare = kind.startswith("bare")  # "bare-h11": on uvicorn's h11 protocol (--bare-http)
    if not bare and access_log:
        from syncd.api.app import serve as syncd_serve

        # The production entry point as it is: syncd's logging, uvicorn's access log on.
        syncd_serve(Settings(database_url=url, **cache), host=HOST, port=port)  # type: ignore[arg-type]
        return
    if not bare:
        from syncd.api.app import create_app, freeze_startup_heap
        from syncd.api.send_timeout import protocol_with_deadlines
        from syncd.logging import configure_logging

        settings = Settings(database_url=url, log_level="WARNING", **cache)  # type: ignore[arg-type]
        configure_logging(settings, "api")
        app = create_app(settings)
        freeze_startup_heap()  # as syncd's entry points do before they serve
        log_config: Any = None
        # syncd's own protocol class (the header and send deadlines), as `syncd api` serves.
        protocol: Any = protocol_with_deadlines(
            settings.api_header_timeout_seconds, settings.api_send_timeout_seconds
        )
    else:
        app = bare_app()
        log_config = uvicorn.config.LOGGING_CONFIG
        protocol = "h11" if kind == "bare-h11" else "auto"  # auto: httptools, as syncd's
    uvicorn.run(
        app,
        host=HOST,
        port=port,
        workers=1,
        log_config=log_config,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        http=protocol,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    kind: str, url: str, access_log: bool, logdir: Path, checkout: Path | None = None
) -> Iterator[tuple[int, int]]:
    """A server subprocess; yields (port, pid) once it answers; stops it (SIGTERM) at the
    end. `checkout`: served by that checkout's code and its .venv (--baseline)."""
    port = free_port()
    python = sys.executable if checkout is None else str(checkout / ".venv" / "bin" / "python")
    cmd = [python, "-m", "bench.bench_api", "--serve", kind, url, str(port)]
    if access_log:
        cmd.append("--access-log")
    name = kind if checkout is None else f"{kind}-baseline"
    with open(logdir / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=checkout)
        try:
            bare = kind.startswith("bare")
            wait_ready(proc, port, BARE_PATH if bare else ENDPOINTS["catalogs"])
            yield port, proc.pid
        except BaseException:
            log.flush()
            print((logdir / f"{name}.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_ready(proc: subprocess.Popen[bytes], port: int, path: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://{HOST}:{port}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not answer {path} within 60 s")


# ---------------------------------------------------------------------------------------
# Load generator (a subprocess of its own)
# ---------------------------------------------------------------------------------------
async def _raw_connection(
    port: int, path: str, deadline: float, budget: list[int], lat: list[float], errors: list[str]
) -> None:
    """One keep-alive HTTP/1.1 connection sending GET `path` back to back until the deadline
    or the shared request budget is spent; appends each request's latency in seconds."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: application/json\r\n\r\n"
    data = request.encode()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(data)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await asyncio.wait_for(reader.readexactly(length), REQUEST_TIMEOUT)
            lat.append(time.perf_counter() - started)
            if head[9:12] != b"200":
                errors.append(head.split(b"\r\n", 1)[0].decode())
    finally:
        writer.close()


def load_raw(port: int, path: str, seconds: float, clients: int) -> tuple[list[float], list[str]]:
    lat: list[float] = []
    errors: list[str] = []
    budget = [MAX_REQUESTS_PER_ROUND]

    async def run() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(_raw_connection(port, path, deadline, budget, lat, errors) for _ in range(clients))
        )

    asyncio.run(run())
    return lat, errors


def load_httpx(port: int, path: str, seconds: float, clients: int) -> tuple[list[float], list[str]]:
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    budget = [MAX_REQUESTS_PER_ROUND]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    url = f"http://{HOST}:{port}{path}"

    def client() -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
            while time.perf_counter() < deadline:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                started = time.perf_counter()
                response = http.get(url)
                lat.append(time.perf_counter() - started)  # list.append is atomic
                if response.status_code != 200:
                    errors.append(str(response.status_code))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return lat, errors


def load(port: int, path: str, seconds: float, clients: int, kind: str) -> dict[str, Any]:
    started = time.perf_counter()
    lat, errors = (load_raw if kind == "raw" else load_httpx)(port, path, seconds, clients)
    elapsed = time.perf_counter() - started
    return {
        "elapsed": elapsed,
        "latencies_us": [round(x * 1e6) for x in lat],
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


# ---------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------
def percentile(values: list[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return float("nan")
    rank = max(1, round(fraction * len(values) + 0.5))
    return float(values[min(rank, len(values)) - 1])


def run_load(port: int, path: str, seconds: float, clients: int, kind: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.bench_api", "--load", str(port), path]
    cmd += [str(seconds), str(clients), kind]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(
            f"{path}: {result['errors']} non-200 answers, e.g. {result['first_error']}"
        )
    return result


def _stat(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU time of process `pid` so far (0 when it is gone); `reaped`: that of
    its exited children instead."""
    fields = _stat(pid)
    if not fields:
        return 0.0
    first = 13 if reaped else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def pg_backends(url: str) -> list[int]:
    """Process ids of the PostgreSQL backends connected to the benchmark's database."""
    import psycopg

    from tests.support.services import PG_ADMIN_DSN

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (url.rsplit("/", 1)[1],)
        ).fetchall()
    return [int(pid) for (pid,) in rows]


class CpuMeter:
    """CPU seconds used in between by the server process and by PostgreSQL: the backends
    connected to the benchmark's database, plus the children the postmaster reaped (parallel
    query workers live only for one query; other databases' exited backends count too)."""

    def __init__(self, server_pid: int, url: str) -> None:
        self.server_pid, self.url = server_pid, url
        backends = pg_backends(url)
        fields = _stat(backends[0]) if backends else []
        self.postmaster = int(fields[1]) if fields else 0

    def __enter__(self) -> CpuMeter:
        self.server = cpu_seconds(self.server_pid)
        self.backends = {pid: cpu_seconds(pid) for pid in pg_backends(self.url)}
        self.reaped = cpu_seconds(self.postmaster, reaped=True) if self.postmaster else 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.server = cpu_seconds(self.server_pid) - self.server
        after = {pid: cpu_seconds(pid) for pid in pg_backends(self.url)}
        self.pg = sum(cpu - self.backends.get(pid, 0.0) for pid, cpu in after.items())
        if self.postmaster:
            self.pg += cpu_seconds(self.postmaster, reaped=True) - self.reaped


def summary(results: list[dict[str, Any]]) -> dict[str, float]:
    lat = sorted(x for r in results for x in r["latencies_us"])
    elapsed = sum(r["elapsed"] for r in results)
    n = max(1, len(lat))
    return {
        "rps": len(lat) / elapsed,
        "p50": percentile(lat, 0.50) / 1000,
        "p99": percentile(lat, 0.99) / 1000,
        "n": len(lat),
        "server_cpu_ms": sum(r.get("server_cpu", 0.0) for r in results) / n * 1000,
        "pg_cpu_ms": sum(r.get("pg_cpu", 0.0) for r in results) / n * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "URL", "PORT"))
    parser.add_argument("--load", nargs=5, metavar=("PORT", "PATH", "SECONDS", "CLIENTS", "KIND"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every target")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per target per round")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed load per target first")
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--endpoints", default="catalogs,packages", help=",".join(ENDPOINTS))
    parser.add_argument("--data", choices=("auto", "full", "subset", "synthetic"), default="auto")
    cache_mode = parser.add_mutually_exclusive_group()
    cache_mode.add_argument(
        "--no-cache",
        action="store_true",
        help="only syncd with its response cache off (SYNCD_API_CACHE_SECONDS=0)",
    )
    cache_mode.add_argument(
        "--cache-only", action="store_true", help="only syncd with its response cache on"
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (syncd: its production logging; bare: uvicorn's default)",
    )
    parser.add_argument(
        "--bare-http",
        choices=("auto", "h11"),
        default="auto",
        help="the bare app's uvicorn protocol: auto (httptools, as syncd's) or h11 (as "
        "before syncd moved to httptools: ratios comparable with older runs)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also serve the uncached syncd of another checkout (its code and .venv, the same "
        "database and schema) as `<endpoint>-base`: old and new code in one run",
    )
    args = parser.parse_args()
    if args.serve:
        kind, url, port = args.serve
        serve(kind, url, int(port), args.access_log)
        return 0
    if args.load:
        port, path, seconds, clients, kind = args.load
        print(json.dumps(load(int(port), path, float(seconds), int(clients), kind)))
        return 0

    from syncd.db.migrate import upgrade
    from tests.support.services import postgres_database

    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    unknown = sorted(set(endpoints) - set(ENDPOINTS))
    if unknown:
        raise SystemExit(f"unknown endpoints: {', '.join(unknown)}")
    python = sys.version.split()[0]
    print(f"syncd API benchmark, {os.cpu_count()} CPUs, PostgreSQL, Python {python}")
    print(
        f"{args.clients} concurrent clients ({args.client} load generator, 1 process), "
        f"uvicorn with 1 worker per app, {args.rounds} rounds x {args.seconds:g} s per target, "
        f"alternating; access log {'on' if args.access_log else 'off'}"
    )
    print(
        "NOTE: the load generator and PostgreSQL run on the same "
        f"{os.cpu_count()} cores as the server under test: compare ratios, not req/s"
    )
    with (
        tempfile.TemporaryDirectory(prefix="syncd-bench-api-") as tmp,
        # A shared machine's engineers each name their databases (SYNCD_BENCH_DB_PREFIX).
        postgres_database(os.environ.get("SYNCD_BENCH_DB_PREFIX", "syncd_bench_api")) as url,
    ):
        workdir = Path(tmp)
        upgrade(url)
        source, label = spack_source(args.data, workdir)
        started = time.perf_counter()
        counts = fill(url, source)
        print(
            f"data: {label}: "
            + ", ".join(f"{n} {t}s" for t, n in counts.items())
            + f" (imported in {time.perf_counter() - started:.1f}s)"
        )
        kinds = [] if args.no_cache else ["syncd"]
        kinds += [] if args.cache_only else ["syncd-nocache"]
        with contextlib.ExitStack() as stack:
            bare_kind = "bare" if args.bare_http == "auto" else "bare-h11"
            bare_port, bare_pid = stack.enter_context(
                server(bare_kind, url, args.access_log, workdir)
            )
            targets = {"bare": (bare_port, BARE_PATH)}
            meters = {bare_port: CpuMeter(bare_pid, url)}
            for kind in kinds:
                port, pid = stack.enter_context(server(kind, url, args.access_log, workdir))
                meters[port] = CpuMeter(pid, url)
                suffix = "" if kind == "syncd" else "-nc"
                targets.update({e + suffix: (port, ENDPOINTS[e]) for e in endpoints})
            if args.baseline is not None:
                checkout = args.baseline.resolve()
                port, pid = stack.enter_context(
                    server("syncd-nocache", url, args.access_log, workdir, checkout)
                )
                meters[port] = CpuMeter(pid, url)
                targets.update({e + "-base": (port, ENDPOINTS[e]) for e in endpoints})
            print(
                "targets: "
                + ", ".join(targets)
                + " (-nc: SYNCD_API_CACHE_SECONDS=0, the response cache off; -base: the same, "
                + "served by the --baseline checkout)"
            )
            for port, path in targets.values():
                run_load(port, path, args.warmup, args.clients, args.client)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            names = list(targets)
            for rnd in range(args.rounds):
                order = names[rnd % len(names) :] + names[: rnd % len(names)]
                line = []
                for name in order:
                    port, path = targets[name]
                    with meters[port] as cpu:
                        result = run_load(port, path, args.seconds, args.clients, args.client)
                    result["server_cpu"], result["pg_cpu"] = cpu.server, cpu.pg
                    results[name].append(result)
                    s = summary([result])
                    line.append(f"{name} {s['rps']:.0f} req/s p99 {s['p99']:.1f} ms")
                print(f"round {rnd + 1}: " + "; ".join(line))
        report(results, targets)
    return 0


def report(results: dict[str, list[dict[str, Any]]], targets: dict[str, tuple[int, str]]) -> None:
    sums = {name: summary(r) for name, r in results.items()}
    bare = sums["bare"]
    print(
        f"\n{'target':<12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} "
        f"{'server CPU':>11} {'PG CPU':>8}  path"
    )
    for name, s in sums.items():
        print(
            f"{name:<12} {s['rps']:>8.0f} {s['p50']:>8.1f} {s['p99']:>8.1f} {s['n']:>9} "
            f"{s['server_cpu_ms']:>8.2f} ms {s['pg_cpu_ms']:>5.2f} ms  {targets[name][1]}"
        )
    print(
        "(CPU per request: the server process's; PostgreSQL's: the database's backends and "
        "reaped parallel workers)"
    )
    print("\nratios vs bare (all rounds pooled; per-round range in brackets)")
    for name in sums:
        if name == "bare":
            continue
        s = sums[name]
        per_round = [
            (summary([r])["rps"] / summary([b])["rps"], summary([r])["p99"] / summary([b])["p99"])
            for r, b in zip(results[name], results["bare"], strict=True)
        ]
        tput = s["rps"] / bare["rps"]
        p99 = s["p99"] / bare["p99"]
        lo_t, hi_t = min(x[0] for x in per_round), max(x[0] for x in per_round)
        lo_p, hi_p = min(x[1] for x in per_round), max(x[1] for x in per_round)
        ok_t = "ok" if tput >= BUDGET_THROUGHPUT else "OVER BUDGET"
        ok_p = "ok" if p99 <= BUDGET_P99 else "OVER BUDGET"
        print(
            f"{name:<12} throughput {tput:.2f} [{lo_t:.2f}-{hi_t:.2f}] (budget >= "
            f"{BUDGET_THROUGHPUT:.2f}: {ok_t});  p99 {p99:.2f}x [{lo_p:.2f}-{hi_p:.2f}] "
            f"(budget <= {BUDGET_P99}: {ok_p})"
        )


if __name__ == "__main__":
    raise SystemExit(main())
