"""Benchmark of the sync engine on PostgreSQL: `python -m bench.bench_sync`.

In one run, in a database of its own (created and dropped), for the full Spack data and
the full-scale EESSI file:
  parse     the adapter's stream consumed without a database (what parsing alone costs)
  import    full import with syncd.sync.sync_catalog into an empty catalog
  noop      refresh with identical data (must write 0 rows): every package skipped by its
            versions hash (syncd/sync/versions_hash.py)
  noop-full the same refresh with the stored versions hashes forgotten first: every row
            staged and diffed, as every refresh did before (measured side by side with noop)
  change1   refresh with 1% of the versions changed (no run history: the baseline)
  change1+changes  the same refresh recording its run, changes and event as every command
            does (syncd/service/runs.py); its ratio to change1 is the budget (<= 1.2x)
  naive     one ORM insert per row, commit per 25 rows, as the reference does (on a sample,
            extrapolated linearly to the full row count; printed as such)
  copy      raw COPY of the same rows into the same tables: the physical floor
  import-core  the import without its derived data (the read model: list fragments, filter
            values, search text; issue 24), which the COPY floor does not write: the
            catalog's rows alone against their floor, and the read model's share
and, side by side, the no-op refresh as a command runs it (`noop_refresh_report`):
  refresh_hash    service.update_catalog of a file:// mirror copied again (same bytes, new
                  mtimes, so new validators): unchanged by the bodies' sha256
  refresh_hashes  the same with EESSI's hashes.json in the mirror: no data file read
`--noop-only` runs just import, noop, noop-full and these.
Every scenario runs in a subprocess of its own, 3 times (naive: twice); the fastest run is
reported (the machine is shared) with the largest peak RSS. Peak RSS is the kernel's
high-water mark at the end minus the RSS after imports and the first database connection
(the mark is reset there through /proc/self/clear_refs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, insert, select, update

from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.db.tables import Catalog, Package, PackageParent, Target, Version
from syncd.domain import CatalogSnapshot, PackageRecord
from syncd.service.runs import RunCatalog, RunContext, RunWriter
from syncd.sync import engine as sync_engine
from syncd.sync import sync_catalog
from syncd.sync.direct_copy import _DIRECT_COLUMNS

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream"
SPACK_FILE = UPSTREAM / "spack" / "repology.full.json.gz"
EESSI_DIR = UPSTREAM / "eessi"
NAIVE_SAMPLE_ROWS = 12_000
NAIVE_BATCH = 25
SCENARIOS = (
    "parse", "import", "noop", "noop-full", "change1", "change1+changes", "naive", "copy",
    "import-core",
)  # fmt: skip
CHANGES_BUDGET = 1.2  # issue 15: a 1% refresh recording its changes, vs one without
# Scenarios measured in turns (run_side_by_side): each pair's second is the first's baseline.
_PAIRS = (("noop", "noop-full"), ("change1", "change1+changes"))
NOOP_SCENARIOS = {"spack": ("refresh_hash",), "eessi": ("refresh_hash", "refresh_hashes")}


# ---------------------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------------------
def _eessi_mirror() -> Path:
    """The full-scale EESSI files under the names upstream serves (a file:// mirror)."""
    import gzip
    import tempfile

    mirror = Path(tempfile.gettempdir()) / f"syncd-bench-eessi-{os.getuid()}"
    mirror.mkdir(exist_ok=True)
    for src in EESSI_DIR.glob("eessi_api_metadata_*.fullscale.derived.json*"):
        name = src.name.replace(".fullscale.derived", "").removesuffix(".gz")
        dest = mirror / name
        if not dest.exists():
            opener: Callable[..., Any] = gzip.open if src.suffix == ".gz" else open
            with opener(src, "rb") as fin:
                dest.write_bytes(fin.read())
    return mirror


def load_snapshot(source: str) -> CatalogSnapshot:
    """The adapter's snapshot of `source` ("spack" or "eessi") read from the local files."""
    from adapters.fetch import Fetcher

    settings = Settings(allow_file_sources=True)
    fetcher = Fetcher(settings)
    if source == "spack":
        from adapters.spack import SpackAdapter

        snap = SpackAdapter(settings).fetch_snapshot(fetcher, source=SPACK_FILE.as_uri())
    else:
        from adapters.eessi import EessiAdapter  # type: ignore[import-not-found]

        base = _eessi_mirror().as_uri() + "/"
        snap = EessiAdapter(settings).fetch_snapshot(fetcher, source=base)
    if snap is None:
        raise RuntimeError(f"{source}: the adapter answered 'not modified'")
    return snap


def change_one_percent(packages: Iterator[PackageRecord], mark: int) -> Iterator[PackageRecord]:
    """Every 100th version gets metadata field `bench_changed` = `mark` (exactly 1%; a new
    mark per repetition changes the same rows again)."""
    n = 0
    for pkg in packages:
        for ver in pkg.versions:
            if n % 100 == 0:
                ver.metadata = {**ver.metadata, "bench_changed": mark}
            n += 1
        yield pkg


# ---------------------------------------------------------------------------------------
# Scenarios (run inside the worker subprocess)
# ---------------------------------------------------------------------------------------
def _catalog(engine: Engine, name: str, version: str) -> int:
    """The id of the benchmark's catalog row `name`/`version`, created if missing."""
    with engine.begin() as conn:
        found = conn.scalar(
            select(Catalog.id).where(Catalog.name == name, Catalog.version == version)
        )
        if found is not None:
            return int(found)
        return int(
            conn.execute(
                insert(Catalog).values(name=name, version=version, catalog_type="bench")
            ).inserted_primary_key[0]  # type: ignore[index]
        )


def run_parse(engine: Engine, source: str) -> int:
    rows = 0
    for pkg in load_snapshot(source).iter_packages():
        rows += 1 + len(pkg.parent_names)
        for ver in pkg.versions:
            rows += 1 + len(ver.targets)
    return rows


def run_sync(
    engine: Engine, source: str, catalog: str, *, change_mark: int = 0, record: bool = False
) -> int:
    """`record`: write the run, its changes and its event in the sync's transaction, as a
    command does; without it the sync records nothing (change tracking off too)."""
    snap = load_snapshot(source)
    # The benchmark labels its catalog rows itself (one per scenario and run): Spack's
    # rolling label must not move them.
    snap.catalog.rolling = False
    if change_mark:
        snap = replace(snap, packages=change_one_percent(snap.iter_packages(), change_mark))
    catalog_id = _catalog(engine, source, catalog)
    sync_engine.RECORD_CHANGES = record
    writer = None
    if record:
        named = RunCatalog(None, source, catalog, "bench")
        writer = RunWriter(RunContext(trigger="cli"), "update_catalog", catalog_id, named, {})
    stats = sync_catalog(engine, catalog_id, snap, on_written=writer)
    if writer is not None:
        print(f"# {source} changes recorded: {writer.written}", file=sys.stderr)
    print(f"# {source} stats: {json.dumps(stats.as_dict())}", file=sys.stderr)
    return stats.rows_written


def run_naive(engine: Engine, source: str, catalog: str) -> int:
    """Per-row ORM inserts committed every 25 rows, on the first packages of the snapshot
    until NAIVE_SAMPLE_ROWS rows are written (whole packages, so a little more); returns the
    rows written (parsing them is included in the time)."""
    from sqlalchemy.orm import Session

    catalog_id = _catalog(engine, source, catalog)
    done = 0
    ids: dict[str, int] = {}
    links: list[tuple[str, str]] = []
    with Session(engine) as session:

        def add(obj: Any) -> None:
            nonlocal done
            session.add(obj)
            session.flush()  # one INSERT per row; the id is needed by the children
            done += 1
            if done % NAIVE_BATCH == 0:
                session.commit()

        for pkg in load_snapshot(source).iter_packages():
            if done >= NAIVE_SAMPLE_ROWS:
                break
            p = Package(
                catalog_id=catalog_id,
                name=pkg.name,
                description=pkg.description,
                homepage=pkg.homepage,
                categories=pkg.categories,
                licenses=pkg.licenses,
                maintainers=pkg.maintainers,
                is_extension=pkg.is_extension,
                version_count=len(pkg.versions),
            )
            add(p)
            ids[pkg.name] = p.id
            links.extend((pkg.name, parent) for parent in pkg.parent_names)
            for index, ver in enumerate(pkg.versions):
                v = Version(
                    package_id=p.id,
                    catalog_id=catalog_id,
                    version=ver.version,
                    module_version=ver.module_version,
                    release_date=ver.release_date,
                    dependencies=ver.dependencies,
                    metadata_=ver.metadata,
                    sort_index=index,
                )
                add(v)
                for tgt in ver.targets:
                    add(
                        Target(
                            version_id=v.id,
                            catalog_id=catalog_id,
                            target_type=tgt.target_type,
                            target_name=tgt.target_name,
                            target_subtype=tgt.target_subtype,
                            location=tgt.location,
                            metadata_=tgt.metadata,
                            gpu_architectures=tgt.gpu_architectures,
                        )
                    )
        for child, parent in links:
            if parent in ids and child in ids:
                add(
                    PackageParent(
                        package_id=ids[child], parent_id=ids[parent], catalog_id=catalog_id
                    )
                )
        session.commit()
    return done


def run_copy(engine: Engine, source: str, catalog: str) -> tuple[int, float]:
    """COPY the snapshot's rows straight into the tables; returns (rows, seconds of COPY).

    The rows are built in memory first (not timed): the floor is the database's own cost.
    """
    catalog_id = _catalog(engine, source, catalog)
    now = datetime.now(UTC)
    enc = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
    with engine.connect() as conn:
        base = {
            t: int(conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {t}").scalar_one())
            for t in ("package", "version", "target")
        }
    pkgs: list[tuple[Any, ...]] = []
    vers: list[tuple[Any, ...]] = []
    tgts: list[tuple[Any, ...]] = []
    parents: list[tuple[str, str]] = []
    ids: dict[str, int] = {}
    for pkg in load_snapshot(source).iter_packages():
        pid = base["package"] + len(pkgs) + 1
        ids[pkg.name] = pid
        pkgs.append(
            (pid, uuid.uuid4(), now, now, catalog_id, pkg.name, pkg.description, pkg.homepage,
             enc(pkg.categories), enc(pkg.licenses), enc(pkg.maintainers), enc(pkg.metadata),
             pkg.is_extension, "", len(pkg.versions), 0)
        )  # fmt: skip
        parents.extend((pkg.name, parent) for parent in pkg.parent_names)
        for index, ver in enumerate(pkg.versions):
            vid = base["version"] + len(vers) + 1
            vers.append(
                (vid, uuid.uuid4(), now, now, pid, catalog_id, ver.version, ver.module_version,
                 ver.release_date, enc(ver.dependencies), enc(ver.metadata), index, "")
            )  # fmt: skip
            for tgt in ver.targets:
                tgts.append(
                    (base["target"] + len(tgts) + 1, uuid.uuid4(), now, now, vid, catalog_id,
                     tgt.target_type, tgt.target_name, tgt.target_subtype, tgt.location,
                     enc(tgt.metadata), enc(tgt.gpu_architectures), "")
                )  # fmt: skip
    links = {(ids[c], ids[p]) for c, p in parents if c in ids and p in ids and c != p}
    link_rows = [(c, p, catalog_id) for c, p in links]
    tables: tuple[tuple[Any, list[tuple[Any, ...]]], ...] = (
        (Package.__table__, pkgs),
        (Version.__table__, vers),
        (Target.__table__, tgts),
        (PackageParent.__table__, link_rows),
    )
    started = time.perf_counter()
    with engine.begin() as conn:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:
            for table, rows in tables:
                # The columns the rows give, as the import writes them (is_local: its
                # server default, as the import leaves it).
                columns = _DIRECT_COLUMNS[table.name]
                with cur.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            for name in ("package", "version", "target"):
                cur.execute(f"SELECT setval('{name}_id_seq', (SELECT max(id) FROM {name}))")
    seconds = time.perf_counter() - started
    return len(pkgs) + len(vers) + len(tgts) + len(link_rows), seconds


def _refresh_mirror(source: str, hashes_json: bool) -> Path:
    """A mirror folder of the source's files for the refresh scenarios (its mtimes are
    moved), with EESSI's hashes.json (as EESSI/api_data calculate_hashes.py writes it) or
    without."""
    import hashlib
    import shutil
    import tempfile

    mirror = Path(tempfile.gettempdir()) / f"syncd-bench-refresh-{source}-{os.getuid()}"
    mirror.mkdir(exist_ok=True)
    files = [SPACK_FILE] if source == "spack" else sorted(_eessi_mirror().iterdir())
    for src in files:
        if not (mirror / src.name).exists():
            shutil.copyfile(src, mirror / src.name)
    hashes = mirror / "hashes.json"
    hashes.unlink(missing_ok=True)
    if hashes_json:
        listed = {
            f.name: {"hash": hashlib.sha256(f.read_bytes()).hexdigest(), "timestamp": ""}
            for f in files
        }
        hashes.write_text(json.dumps(listed, indent=4))
    return mirror


def run_refresh(engine: Engine, url: str, source: str, *, hashes_json: bool) -> tuple[int, float]:
    """One no-op refresh through the service, as a worker runs it, of a mirror whose files
    were copied again (same bytes, new mtimes); returns (rows written, seconds of the
    refresh). The first run imports the catalog (not timed)."""
    from adapters.base import load_adapters
    from adapters.fetch import Fetcher
    from syncd import service

    mirror = _refresh_mirror(source, hashes_json)
    uri = (mirror / SPACK_FILE.name).as_uri() if source == "spack" else mirror.as_uri() + "/"
    settings = Settings(allow_file_sources=True, database_url=url)
    adapters = load_adapters(settings)
    name = "Spack" if source == "spack" else "EESSI"
    with Fetcher(settings) as fetcher:
        with engine.connect() as conn:
            found = conn.scalar(select(Catalog.uuid).where(Catalog.source_url == uri))
        if found is None:
            catalog_uuid = service.import_catalog(
                engine, adapters, fetcher, name=name, source=uri
            ).catalog_uuid
        else:
            catalog_uuid = found.hex
        for path in mirror.iterdir():
            stamp = path.stat().st_mtime + 60  # copied again: new validators
            os.utime(path, (stamp, stamp))
        started = time.perf_counter()
        result = service.update_catalog(engine, adapters, fetcher, catalog_uuid=catalog_uuid)
        seconds = time.perf_counter() - started
    if result.changed:
        raise RuntimeError(f"{source}: a refresh of identical content synced")
    return (result.stats.rows_written if result.stats else 0), seconds


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark to the current RSS and return that (KiB), so that
    memory freed after imports does not hide the scenario's own peak. Falls back to
    ru_maxrss where /proc/self/clear_refs is not writable."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return _status_kb("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss() -> int:
    try:
        return _status_kb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(scenario: str, source: str, url: str, rep: int) -> dict[str, Any]:
    """Run one repetition of one scenario and measure it (inside its own subprocess).

    Imports, naive loads and COPYs go into a fresh catalog per repetition; noop and
    change1 refresh the catalog of the first import.
    """
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40),  # errors only: no log I/O
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    import adapters.eessi
    import adapters.fetch
    import adapters.spack  # noqa: F401  (imports belong to the baseline)

    engine = make_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    baseline_kb = _reset_peak_rss()
    if scenario == "noop-full":  # not timed: the hashes' loss, as after migration 0024
        with engine.begin() as conn:
            conn.execute(
                update(Package)
                .where(Package.catalog_id == _catalog(engine, source, "bench"))
                .values(versions_hash=None)
            )
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    fresh = f"{scenario}-{rep}"
    if scenario == "parse":
        rows = run_parse(engine, source)
    elif scenario == "import-core":
        sync_engine.refresh_read_model = lambda *_a, **_k: None  # type: ignore[assignment]
        rows = run_sync(engine, source, fresh)
    elif scenario == "import":
        rows = run_sync(engine, source, "bench" if rep == 0 else fresh)
    elif scenario in ("noop", "noop-full"):
        rows = run_sync(engine, source, "bench")
    elif scenario == "change1":
        rows = run_sync(engine, source, "bench", change_mark=rep + 1)
    elif scenario == "change1+changes":  # other marks: each run changes the 1% again
        rows = run_sync(engine, source, "bench", change_mark=rep + 101, record=True)
    elif scenario == "naive":
        rows = run_naive(engine, source, fresh)
    elif scenario == "copy":
        rows, extra["copy_seconds"] = run_copy(engine, source, fresh)
    elif scenario in ("refresh_hash", "refresh_hashes"):
        rows, extra["refresh_seconds"] = run_refresh(
            engine, url, source, hashes_json=scenario == "refresh_hashes"
        )
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    seconds = time.perf_counter() - started
    peak_kb = _peak_rss()
    engine.dispose()
    return {
        "seconds": extra.pop("copy_seconds", extra.pop("refresh_seconds", seconds)),
        "rss_mb": (peak_kb - baseline_kb) / 1024,
        "rows": rows,
        **extra,
    }


# ---------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------
def run_scenario(
    scenario: str, source: str, url: str, repeat: int, reps: list[int] | None = None
) -> dict[str, Any]:
    """The fastest of `repeat` runs (the machine is shared: the minimum is the least
    disturbed one), with the largest peak RSS of them. `reps`: the repetition numbers to
    run (default 0..repeat-1)."""
    best: dict[str, Any] | None = None
    peak = 0.0
    for rep in reps if reps is not None else range(repeat):
        cmd = [
            sys.executable,
            "-m",
            "bench.bench_sync",
            "--worker",
            scenario,
            source,
            url,
            str(rep),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{scenario}/{source} failed:\n{proc.stderr[-3000:]}")
        if rep == 0:
            for line in proc.stderr.splitlines():
                if line.startswith("# "):
                    print(f"  {scenario}: {line[2:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        peak = max(peak, result["rss_mb"])
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    assert best is not None
    best["rss_mb"] = peak
    return best


def run_side_by_side(
    scenarios: tuple[str, ...], source: str, url: str, repeat: int
) -> dict[str, dict[str, Any]]:
    """Repetitions of `scenarios` in turns, the order swapped every round (a, b, b, a, a,
    b, ...): a load that comes and goes on a shared machine, and whatever the previous run
    left behind (dead tuples, cold pages), then weigh on both alike. The best of each, as
    run_scenario."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
    for rep in range(repeat):
        for name in scenarios if rep % 2 == 0 else tuple(reversed(scenarios)):
            runs[name].append(run_scenario(name, source, url, 1, reps=[rep]))
    return {
        name: min(found, key=lambda r: r["seconds"]) | {"rss_mb": max(r["rss_mb"] for r in found)}
        for name, found in runs.items()
    }


def report(source: str, results: dict[str, dict[str, Any]], import_rows: int) -> None:
    print(f"\n== {source}")
    print(f"{'scenario':<10} {'seconds':>10} {'peak RSS MB':>12} {'rows written':>13}")
    for name, r in results.items():
        note = ""
        if name == "naive":
            note = (
                f"   EXTRAPOLATED linearly from a sample of {r['sample_rows']} rows "
                f"(the first packages) in {r['sample_seconds']:.2f}s"
            )
        elif name == "parse":
            note = "   (rows read, no database)"
        elif name == "copy":
            note = "   (COPY statements + commit only)"
        print(f"{name:<10} {r['seconds']:>10.2f} {r['rss_mb']:>12.1f} {r['rows']:>13}{note}")
    if "change1" in results and "change1+changes" in results:
        ratio = results["change1+changes"]["seconds"] / results["change1"]["seconds"]
        verdict = "within" if ratio <= CHANGES_BUDGET else "OVER"
        print(
            f"1% refresh recording changes vs without: {ratio:.2f}x "
            f"({verdict} the {CHANGES_BUDGET}x budget)"
        )
    if {"import", "import-core", "copy"} <= set(results):
        core = results["import-core"]["seconds"]
        print(
            f"import vs import without the read model: {results['import']['seconds'] / core:.2f}x"
        )
        print(
            f"import without the read model vs COPY floor: {core / results['copy']['seconds']:.2f}x"
        )
    if not {"import", "parse", "naive", "copy", "noop"} <= set(results):
        return  # a partial run (--scenarios): only the ratios it measured
    full = results["import"]["seconds"]
    parse = results["parse"]["seconds"]
    naive = results["naive"]["seconds"]
    floor = results["copy"]["seconds"]
    print(f"full import vs naive per-row ORM: {naive / full:.1f}x faster")
    print(f"full import vs COPY floor:        {full / floor:.2f}x the floor (parsing included)")
    print(
        f"  without the adapter's parse:    {(full - parse) / floor:.2f}x the floor "
        f"({full - parse:.2f}s of {full:.2f}s)"
    )
    print(f"no-op refresh vs full import:     {results['noop']['seconds'] / full:.2f}")
    if "noop-full" in results:
        noop, everything = results["noop"]["seconds"], results["noop-full"]["seconds"]
        print(
            f"  every package staged (noop-full): {everything / full:.2f}"
            f" (versions hashes: {everything / noop:.1f}x faster)"
        )
    print(f"no-op refresh rows written:       {results['noop']['rows']} (import: {import_rows})")


def noop_refresh_report(
    source: str, url: str, repeat: int, results: dict[str, dict[str, Any]]
) -> None:
    """The no-op refresh before (what a refresh with new validators did: parse, stage, diff
    every row; the `noop` scenario) and after (the service's refresh, unchanged by content),
    each against the same run's full import."""
    full = results["import"]["seconds"]
    print(f"no-op refresh vs full import ({source}, identical content, validators changed):")
    if "noop-full" in results:
        print(f"  parsed, staged, diffed:          {results['noop-full']['seconds'] / full:.3f}")
    print(f"  parsed, packages skipped:        {results['noop']['seconds'] / full:.3f}")
    for scenario in NOOP_SCENARIOS[source]:
        r = run_scenario(scenario, source, url, repeat)
        how = "hashes.json" if scenario == "refresh_hashes" else "body sha256"
        print(
            f"  after:  unchanged by {how + ':':<13} {r['seconds'] / full:.3f}"
            f"   ({r['seconds']:.3f}s of {full:.2f}s, {r['rows']} rows written)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", nargs=4, metavar=("SCENARIO", "SOURCE", "URL", "REP"))
    parser.add_argument("--sources", default="spack,eessi")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario; best is kept")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset (import first: the refreshes refresh its catalog)",
    )
    parser.add_argument(
        "--noop-only", action="store_true", help="only import, noop and the service refreshes"
    )
    args = parser.parse_args()
    if args.worker:
        scenario, source, url, rep = args.worker
        print(json.dumps(worker(scenario, source, url, int(rep))))
        return 0

    from syncd.db.migrate import upgrade
    from tests.support.services import postgres_database

    python = sys.version.split()[0]
    print(f"syncd sync benchmark, {os.cpu_count()} CPUs, PostgreSQL, Python {python}")
    print(f"best of {args.repeat} runs per scenario (naive: best of 2); RSS: the largest")
    with postgres_database("syncd_bench") as url:
        upgrade(url)
        scenarios = ("import", "noop", "noop-full") if args.noop_only else SCENARIOS
        for source in args.sources.split(","):
            try:
                wanted = [s for s in scenarios if s in args.scenarios.split(",")]
                results: dict[str, dict[str, Any]] = {}
                for s in wanted:
                    pair = next((p for p in _PAIRS if s in p and set(p) <= set(wanted)), None)
                    if pair is not None and s != pair[0]:
                        continue  # measured side by side with the pair's first
                    if pair is not None:
                        results |= run_side_by_side(pair, source, url, args.repeat)
                        continue
                    results[s] = run_scenario(s, source, url, 2 if s == "naive" else args.repeat)
                if args.noop_only:
                    print(f"\n== {source}")
                    noop_refresh_report(source, url, args.repeat, results)
                    continue
            except RuntimeError as exc:
                print(f"\n== {source}: NOT MEASURED: {exc}")
                continue
            full_rows = results["import"]["rows"] if "import" in results else 0
            if "naive" in results:
                naive = results["naive"]
                naive["sample_rows"], naive["sample_seconds"] = naive["rows"], naive["seconds"]
                naive["rows"] = full_rows
                naive["seconds"] = naive["sample_seconds"] * full_rows / naive["sample_rows"]
            report(source, results, full_rows)
            if not {"import", "noop"} <= results.keys():
                continue  # the service's no-op refreshes are compared with these two
            try:
                noop_refresh_report(source, url, args.repeat, results)
            except RuntimeError as exc:
                print(f"no-op refresh through the service: NOT MEASURED: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
