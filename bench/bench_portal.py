"""A portal's read mix against the HTTP API: `python -m bench.bench_portal`.

In one run, in a database of its own (PostgreSQL, or SQLite with --backend sqlite; created,
migrated, filled, dropped at the end): full Spack and the full-scale EESSI catalog from
../shared/upstream (through the real adapters and syncd.sync.sync_catalog), or a synthetic
catalog with --data synthetic (what --quick uses). From the database's real values (uuids,
names and their prefixes, CPU families and microarchitectures, GPU architectures, toolchain
names, categories, licenses) it builds --urls distinct URLs of the request classes a Waldur
portal sends (CLASSES: the unfiltered package table the largest share), each class's URLs
with Zipf popularity (s = --zipf) inside the class's share.

Two modes (--mode mix|single|both):
  mix     --clients keep-alive connections (bench_api's raw asyncio client) draw URLs by
          popularity, against a bare FastAPI endpoint and syncd (default response cache) in
          the same run, alternating for --rounds x --seconds. Printed: throughput and p99
          ratios to bare (budgets >= 0.5 and <= 3x), p50/p99 per class, server and
          PostgreSQL CPU per request, and the load generator's own CPU per request (it
          must not be the limit).
  single  one connection to syncd with the response cache off: each class's URLs in turn
          (--single-requests per class), p50/p99 per class (budget on PostgreSQL: p50 <= 10
          ms, p99 <= 25 ms; on SQLite p50 <= 30 ms) and the slowest requests.
Servers and CPU meters are bench_api's. Compare ratios, not absolute numbers: the load
generator and the database share the machine's cores with the server under test.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.bench_api import BARE_PATH, HOST, REQUEST_TIMEOUT, CpuMeter, percentile, server

PACKAGES = "/api/marketplace-software-packages/"
VERSIONS = "/api/marketplace-software-versions/"
CATALOGS = "/api/marketplace-software-catalogs/"
# Request classes and their shares of a portal's requests.
CLASSES = {
    "table": 0.30,  # the package table: pages, page sizes, orderings, no filter
    "catalog": 0.06,  # the table filtered by catalog_uuid
    "query": 0.12,  # the search box: prefixes of real names as typed
    "offering": 0.10,  # catalog_uuid + cpu_family + cpu_microarchitecture
    "offering+query": 0.04,
    "has_gpu": 0.04,
    "cpu": 0.06,  # cpu_family and/or cpu_microarchitecture
    "toolchain": 0.04,
    "cat/lic/gpu_arch": 0.06,  # category, license, gpu_arch
    "versions": 0.14,  # an expanded row: versions by package_uuid
    "catalogs": 0.04,  # the catalog list, for the filter options
}
BUDGET_THROUGHPUT = 0.5
BUDGET_P99 = 3.0
BUDGET_SINGLE = {"postgresql": (10.0, 25.0), "sqlite": (30.0, None)}


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------
def synthetic_snapshot(n_packages: int) -> Any:
    """A catalog with the shapes the filters look at: CPU targets, GPU builds, toolchains."""
    from syncd.domain import PackageRecord, TargetRecord, VersionRecord
    from tests.support.records import catalog_info, snapshot

    micro = ["x86_64/amd/zen2", "x86_64/amd/zen3", "x86_64/intel/icelake", "aarch64/neoverse_v1"]
    toolchains = ["GCCcore", "foss", "GCC", "system"]
    packages = []
    for i in range(n_packages):
        versions = []
        for j in range(1 + i % 4):
            targets = [
                TargetRecord(
                    target_type="cpu_architecture",
                    target_name=arch.split("/")[0],
                    target_subtype=arch,
                    location=f"/cvmfs/x/{i}/{j}/{arch}",
                    gpu_architectures=["nvidia/cc80"] if i % 17 == 0 else [],
                )
                for arch in micro[: 1 + (i + j) % len(micro)]
            ]
            toolchain = {"name": toolchains[(i + j) % 4], "version": "13.2.0"}
            versions.append(
                VersionRecord(
                    version=f"{j}.{i % 7}", metadata={"toolchain": toolchain}, targets=targets
                )
            )
        packages.append(
            PackageRecord(
                name=f"{['Py', 'R', 'lib', 'GRO'][i % 4]}-pkg{i:05d}",
                description=f"synthetic package {i} for the portal benchmark",
                categories=["bio"] if i % 3 == 0 else [],
                licenses=["MIT"] if i % 2 else ["GPL"],
                versions=versions,
            )
        )
    return snapshot(packages, info=catalog_info("Synthetic", "1"))


def fill(url: str, data: str) -> dict[str, int]:
    """Import the data through the adapters and sync_catalog; returns the row counts."""
    import structlog
    from sqlalchemy import func, insert, select

    from bench.bench_sync import EESSI_DIR, SPACK_FILE, load_snapshot
    from syncd.db.engine import make_engine
    from syncd.db.tables import Catalog, Package, Target, Version
    from syncd.sync import sync_catalog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    if data == "full" and not (SPACK_FILE.exists() and EESSI_DIR.exists()):
        raise SystemExit(f"{SPACK_FILE.parent.parent}: no upstream data (use --data synthetic)")
    snapshots = (
        [lambda: synthetic_snapshot(600)]
        if data == "synthetic"
        else [lambda: load_snapshot("spack"), lambda: load_snapshot("eessi")]
    )
    engine = make_engine(url)
    try:
        for make in snapshots:
            snap = make()
            snap.catalog.rolling = False
            info = snap.catalog
            with engine.begin() as conn:
                catalog_id = conn.execute(
                    insert(Catalog).values(
                        name=info.name,
                        version=info.version,
                        catalog_type=str(info.catalog_type),
                        source_url=info.source_url,
                        description=info.description,
                        metadata_=info.metadata,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            sync_catalog(engine, int(catalog_id), snap)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")  # as autovacuum leaves a new import
        with engine.connect() as conn:
            return {
                t.__tablename__: int(conn.scalar(select(func.count()).select_from(t)) or 0)
                for t in (Catalog, Package, Version, Target)
            }
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------------------
def _values(url: str) -> dict[str, list[Any]]:
    """The database's real values the URLs are built from."""
    from sqlalchemy import select

    from syncd.db.engine import make_engine
    from syncd.db.tables import Catalog, Package, Target, Version

    engine = make_engine(url)
    cpu = Target.target_type == "cpu_architecture"
    try:
        with engine.connect() as conn:
            targets = conn.execute(
                select(Target.catalog_id, Target.target_name, Target.target_subtype)
                .distinct()
                .where(cpu)
                .order_by(Target.catalog_id, Target.target_name, Target.target_subtype)
            ).all()
            gpu_rows = conn.execute(select(Target.gpu_architectures).limit(200_000)).scalars().all()
            toolchains = (
                conn.execute(select(Version.metadata_["toolchain"]["name"].as_string()).distinct())
                .scalars()
                .all()
            )
            catalogs = dict(conn.execute(select(Catalog.id, Catalog.uuid)).all())
            packages = conn.execute(
                select(Package.uuid, Package.name, Package.categories, Package.licenses).order_by(
                    Package.id
                )
            ).all()
    finally:
        engine.dispose()
    return {
        "offerings": [(catalogs[c].hex, f, m) for c, f, m in targets],
        "families": sorted({f for _, f, _ in targets}),
        "micro": sorted({m for _, _, m in targets if m}),
        "gpu": sorted({g for row in gpu_rows for g in row or []}),
        "toolchains": sorted(t for t in toolchains if t),
        "catalogs": [u.hex for u in catalogs.values()],
        "package_uuids": [p.uuid.hex for p in packages],
        "names": [p.name for p in packages],
        "categories": sorted({c for p in packages for c in p.categories or []}),
        "licenses": sorted({x for p in packages for x in p.licenses or []}),
    }


def _class_urls(name: str, v: dict[str, list[Any]], n: int, rng: random.Random) -> list[str]:
    """Up to `n` distinct URLs of request class `name`, most popular first."""
    from urllib.parse import urlencode

    def page() -> dict[str, Any]:
        # Filtered lists: the first page, at the portal's page sizes (a later page may not
        # exist, and Waldur answers 404 there).
        q: dict[str, Any] = {"page_size": rng.choice([10, 10, 25])}
        if rng.random() < 0.3:  # a column header clicked
            q["o"] = rng.choice(["name", "-name", "catalog_name", "-modified"])
        return q

    def prefix() -> str:
        word = rng.choice(v["names"])
        return word[: rng.randint(2, max(2, min(len(word), 8)))].lower()

    def make() -> str:
        if name == "table":
            size = rng.choice([10, 10, 25, 50])
            last = max(1, len(v["names"]) // size)
            q: dict[str, Any] = {"page": min(int(rng.paretovariate(0.7)), last), "page_size": size}
            if rng.random() < 0.3:
                q["o"] = rng.choice(["name", "-name", "catalog_name", "-modified"])
            return PACKAGES + "?" + urlencode(q)
        if name == "catalog":
            q = {"catalog_uuid": rng.choice(v["catalogs"]), **page()}
            # Later pages too, within what the smallest catalog surely has.
            last = max(1, len(v["names"]) // (4 * len(v["catalogs"])) // q["page_size"])
            q["page"] = min(int(rng.paretovariate(0.7)), last)
            return PACKAGES + "?" + urlencode(q)
        if name == "query":
            return PACKAGES + "?" + urlencode({"query": prefix(), **page()})
        if name in ("offering", "offering+query"):
            cat, family, micro = rng.choice(v["offerings"])
            q = {"catalog_uuid": cat, "cpu_family": family, "cpu_microarchitecture": micro}
            if name == "offering+query":
                q["query"] = prefix()
            return PACKAGES + "?" + urlencode({**q, **page()})
        if name == "has_gpu":
            q = {"has_gpu": rng.choice(["true", "true", "false"]), **page()}
            return PACKAGES + "?" + urlencode(q)
        if name == "cpu":
            choice = rng.random()
            q = {}
            if choice < 0.6:
                q["cpu_family"] = rng.choice(v["families"])
            if choice >= 0.4:
                q["cpu_microarchitecture"] = rng.choice(v["micro"])
            return PACKAGES + "?" + urlencode({**q, **page()})
        if name == "toolchain":
            q = {"toolchain_name": rng.choice(v["toolchains"]), **page()}
            return PACKAGES + "?" + urlencode(q)
        if name == "cat/lic/gpu_arch":
            key = rng.choice(["category", "license", "gpu_arch"])
            pool = {"category": "categories", "license": "licenses", "gpu_arch": "gpu"}[key]
            return PACKAGES + "?" + urlencode({key: rng.choice(v[pool] or ["none"]), **page()})
        if name == "versions":
            return VERSIONS + "?" + urlencode({"package_uuid": rng.choice(v["package_uuids"])})
        return CATALOGS + ("" if rng.random() < 0.8 else "?" + urlencode({"o": "name"}))

    urls: dict[str, None] = {}
    for _ in range(n * 20):
        if len(urls) >= n:
            break
        urls[make()] = None
    return list(urls)


def build_urls(url: str, n: int, zipf: float, seed: int) -> list[tuple[str, str, float]]:
    """(class, path, weight) for `n` distinct URLs; weights sum to 1."""
    rng = random.Random(seed)
    values = _values(url)
    out: list[tuple[str, str, float]] = []
    for name, share in CLASSES.items():
        urls = _class_urls(name, values, max(1, round(n * share)), rng)
        ranks = [1 / (r + 1) ** zipf for r in range(len(urls))]
        total = sum(ranks)
        out += [(name, path, share * w / total) for path, w in zip(urls, ranks, strict=True)]
    return out


# ---------------------------------------------------------------------------------------
# Load generator (a subprocess of its own)
# ---------------------------------------------------------------------------------------
async def _connection(
    port: int, paths: list[str], pick: Any, deadline: float, out: list[tuple[int, int]]
) -> None:
    """One keep-alive connection: GET pick() back to back until the deadline; appends
    (url index, latency in microseconds)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.perf_counter() < deadline:
            index = pick()
            if index is None:
                return
            data = f"GET {paths[index]} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
            started = time.perf_counter()
            writer.write(data)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await asyncio.wait_for(reader.readexactly(length), REQUEST_TIMEOUT)
            if head[9:12] != b"200":
                status = head.split(b"\r\n", 1)[0].decode()
                raise RuntimeError(f"{paths[index]}: {status}")
            out.append((index, round((time.perf_counter() - started) * 1e6)))
    finally:
        writer.close()


def load(port: int, spec_file: str, seconds: float, clients: int, sequence: bool) -> dict[str, Any]:
    """Run the load; `sequence`: the spec's URLs once each, in order (single-client mode)."""
    spec = json.loads(Path(spec_file).read_text())
    paths: list[str] = spec["paths"]
    if sequence:
        it = iter(range(len(paths)))

        def pick() -> int | None:
            return next(it, None)
    else:
        cum: list[float] = spec["cum_weights"]
        rnd = random.Random(spec["seed"])

        def pick() -> int | None:
            return bisect.bisect_left(cum, rnd.random() * cum[-1])

    out: list[tuple[int, int]] = []
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()

    async def run() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(_connection(port, paths, pick, deadline, out) for _ in range(clients))
        )

    asyncio.run(run())
    elapsed = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    return {"elapsed": elapsed, "samples": out, "load_cpu": cpu}


def run_load(
    port: int, spec: dict[str, Any], seconds: float, clients: int, sequence: bool = False
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        cmd = [sys.executable, "-m", "bench.bench_portal", "--load", str(port), f.name]
        cmd += [str(seconds), str(clients), "1" if sequence else "0"]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=seconds + 600
        )
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------
def _stats(lat: list[int]) -> tuple[float, float]:
    lat = sorted(lat)
    return percentile(lat, 0.5) / 1000, percentile(lat, 0.99) / 1000


def _per_class(classes: list[str], results: list[dict[str, Any]]) -> dict[str, list[int]]:
    per: dict[str, list[int]] = {name: [] for name in CLASSES}
    for r in results:
        for index, us in r["samples"]:
            per[classes[index]].append(us)
    return per


def mix(
    args: argparse.Namespace, url: str, urls: list[tuple[str, str, float]], workdir: Path
) -> None:
    classes = [c for c, _, _ in urls]
    cum, total = [], 0.0
    for _, _, w in urls:
        total += w
        cum.append(total)
    syncd_spec = {"paths": [p for _, p, _ in urls], "cum_weights": cum, "seed": args.seed}
    bare_spec = {"paths": [BARE_PATH], "cum_weights": [1.0], "seed": args.seed}
    with contextlib.ExitStack() as stack:
        targets: dict[str, tuple[int, dict[str, Any], CpuMeter]] = {}
        for kind, spec in (("bare", bare_spec), ("syncd", syncd_spec)):
            port, pid = stack.enter_context(server(kind, url, False, workdir))
            targets[kind] = (port, spec, CpuMeter(pid, url) if "postgresql" in url else None)  # type: ignore[assignment]
        for port, spec, _ in targets.values():
            run_load(port, spec, args.warmup, args.clients)
        results: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
        for rnd in range(args.rounds):
            order = list(targets)[rnd % 2 :] + list(targets)[: rnd % 2]
            for kind in order:
                port, spec, meter = targets[kind]
                with meter if meter else contextlib.nullcontext() as cpu:  # type: ignore[attr-defined]
                    r = run_load(port, spec, args.seconds, args.clients)
                r["server_cpu"], r["pg_cpu"] = (cpu.server, cpu.pg) if cpu else (0.0, 0.0)
                results[kind].append(r)
    print(f"\n{'target':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} "
          f"{'server CPU':>11} {'DB CPU':>8} {'loadgen CPU':>12}")  # fmt: skip
    sums = {}
    for kind, rs in results.items():
        lat = [us for r in rs for _, us in r["samples"]]
        n = max(1, len(lat))
        rps = len(lat) / sum(r["elapsed"] for r in rs)
        p50, p99 = _stats(lat)
        sums[kind] = (rps, p99)
        cpu = [sum(r[k] for r in rs) / n * 1000 for k in ("server_cpu", "pg_cpu", "load_cpu")]
        print(f"{kind:<8} {rps:>8.0f} {p50:>8.1f} {p99:>8.1f} {n:>9} {cpu[0]:>8.2f} ms "
              f"{cpu[1]:>5.2f} ms {cpu[2]:>9.3f} ms")  # fmt: skip
    tput = sums["syncd"][0] / sums["bare"][0]
    p99r = sums["syncd"][1] / sums["bare"][1]
    print(
        f"\nsyncd vs bare: throughput {tput:.2f} (budget >= {BUDGET_THROUGHPUT}: "
        f"{'ok' if tput >= BUDGET_THROUGHPUT else 'OVER BUDGET'}); p99 {p99r:.2f}x "
        f"(budget <= {BUDGET_P99}x: {'ok' if p99r <= BUDGET_P99 else 'OVER BUDGET'})"
    )
    print(
        f"\nper class (mix, default cache)\n{'class':<18} {'share':>6} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for name, lat in _per_class(classes, results["syncd"]).items():
        p50, p99 = _stats(lat)
        share = len(lat) / max(1, sum(len(r["samples"]) for r in results["syncd"]))
        print(f"{name:<18} {share:>6.1%} {p50:>8.1f} {p99:>8.1f}")


SLOWEST = 5  # requests named after the single-client table


def single(
    args: argparse.Namespace, url: str, urls: list[tuple[str, str, float]], workdir: Path
) -> None:
    """One client, the cache off: every class's URLs in turn, --single-requests per class."""
    seq: list[str] = []
    classes: list[str] = []
    for name in CLASSES:
        mine = [p for c, p, _ in urls if c == name]
        for i in range(args.single_requests):
            seq.append(mine[i % len(mine)])
            classes.append(name)
    spec = {"paths": seq, "cum_weights": [], "seed": args.seed}
    with server("syncd-nocache", url, False, workdir) as (port, _pid):
        run_load(port, {**spec, "paths": seq[:: max(1, len(seq) // 50)]}, 600, 1, sequence=True)
        result = run_load(port, spec, 3600, 1, sequence=True)
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    p50_budget, p99_budget = BUDGET_SINGLE[backend]
    print(
        f"\nsingle client, cache off ({backend})\n{'class':<18} {'p50 ms':>8} {'p99 ms':>8}  budget"
    )
    samples = [(i, us) for i, us in result["samples"]]
    per: dict[str, list[int]] = {name: [] for name in CLASSES}
    for index, us in samples:
        per[classes[index]].append(us)
    for name, lat in per.items():
        p50, p99 = _stats(lat)
        ok = p50 <= p50_budget and (p99_budget is None or p99 <= p99_budget)
        print(f"{name:<18} {p50:>8.1f} {p99:>8.1f}  {'ok' if ok else 'OVER BUDGET'}")
    # A p99 of 100 requests is its slowest one or two: name them (a pause of the server's
    # own, such as a garbage collector's full pass, shows as one slow URL whose statement
    # is fast when asked again).
    print(f"slowest {SLOWEST} requests:")
    for index, us in sorted(samples, key=lambda sample: sample[1], reverse=True)[:SLOWEST]:
        print(f"  {us / 1000:8.1f} ms  {classes[index]:<18} {seq[index]}")


def explain(url: str, urls: list[tuple[str, str, float]]) -> None:
    """The most popular URL of each class, through the app in process: every SELECT it runs
    is run again under EXPLAIN (ANALYZE, BUFFERS) (EXPLAIN QUERY PLAN on SQLite) and printed
    with the request's time."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from syncd.api.app import create_app
    from syncd.config import Settings
    from syncd.db.engine import make_engine

    engine = make_engine(url)
    plans: list[str] = []
    pg = engine.dialect.name == "postgresql"

    @event.listens_for(engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("SELECT", "WITH")) or "EXPLAIN" in statement:
            return
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
        cursor.execute(prefix + statement, params)
        rows = cursor.fetchall()
        plans.append("\n".join(str(r[0] if pg else r[-1]) for r in rows))

    settings = Settings(database_url=url, api_cache_seconds=0.0, log_level="WARNING")
    app = create_app(settings, engine=engine)
    with TestClient(app) as client:
        for name in CLASSES:
            path = next(p for c, p, _ in urls if c == name)
            client.get(path)  # warm
            plans.clear()
            started = time.perf_counter()
            response = client.get(path)
            ms = (time.perf_counter() - started) * 1000
            print(f"\n### {name}: GET {path} -> {response.status_code}, "
                  f"X-Result-Count {response.headers.get('X-Result-Count')}, {ms:.1f} ms "
                  "(request with EXPLAIN runs)")  # fmt: skip
            for plan in plans:
                print(plan)
    engine.dispose()


@contextmanager
def database(backend: str, workdir: Path, given: str | None) -> Iterator[str]:
    if given:
        _create_if_missing(given)
        yield given
        return
    if backend == "sqlite":
        yield f"sqlite:///{workdir}/portal.db"
        return
    from tests.support.services import postgres_database

    with postgres_database("syncd_bench_portal") as url:
        yield url


def _create_if_missing(url: str) -> None:
    """--database names a database to keep: a PostgreSQL one that does not exist yet is
    created (empty; main fills it), as an SQLite file is."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    import psycopg

    from tests.support.services import PG_ADMIN_DSN

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,))
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{parsed.database}"')


def _filled(url: str) -> bool:
    from sqlalchemy import select

    from syncd.db.engine import make_engine
    from syncd.db.tables import Package

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(Package.id).limit(1)) is not None
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--load", nargs=5, metavar=("PORT", "SPEC", "SECONDS", "CLIENTS", "SEQ"))
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--data", choices=("full", "synthetic"), default="full")
    parser.add_argument("--mode", choices=("mix", "single", "both", "explain"), default="both")
    parser.add_argument(
        "--database", help="use (and keep) this database; created when missing, filled when empty"
    )
    parser.add_argument("--urls", type=int, default=4000, help="distinct URLs")
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent in a class")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--single-requests", type=int, default=100, help="per class")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="synthetic data, a smoke test")
    args = parser.parse_args()
    if args.load:
        port, spec, seconds, clients, seq = args.load
        print(json.dumps(load(int(port), spec, float(seconds), int(clients), seq == "1")))
        return 0
    if args.quick:
        args.data, args.urls, args.clients, args.rounds = "synthetic", 200, 4, 1
        args.seconds, args.warmup, args.single_requests = 1.0, 0.3, 5

    from syncd.db.migrate import upgrade

    print(f"syncd portal benchmark, {os.cpu_count()} CPUs, {args.backend}, load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="syncd-bench-portal-") as tmp:
        workdir = Path(tmp)
        with database(args.backend, workdir, args.database) as url:
            upgrade(url)
            started = time.perf_counter()
            counts = fill(url, args.data) if not _filled(url) else {}
            print(f"data ({args.data}): " + ", ".join(f"{n} {t}s" for t, n in counts.items())
                  + f" (imported in {time.perf_counter() - started:.1f} s)")  # fmt: skip
            urls = build_urls(url, args.urls, args.zipf, args.seed)
            print(f"{len(urls)} distinct URLs, {args.clients} clients")
            if args.mode == "explain":
                explain(url, urls)
            if args.mode in ("single", "both"):
                single(args, url, urls, workdir)
            if args.mode in ("mix", "both"):
                mix(args, url, urls, workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
