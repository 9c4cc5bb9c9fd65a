"""Peak memory of a full import on PostgreSQL: `python -m bench.bench_memory`.

Budget (issue 23): the peak RSS of the importing process at most 3x the uncompressed
upstream bytes plus 150 MB, for
  spack   the full Spack repology.json (bench_sync's file)
  eessi   the full-scale EESSI files (bench_sync's mirror)
  huge    a synthetic repology.json holding one package of 100,000 versions (`--versions`),
          4 targets each: the shape that drove an import to ~24x its input
Each import runs in a subprocess of its own, into a fresh catalog of a database of its own
(created and dropped); its peak RSS is the kernel's high-water mark (VmHWM) of that process,
interpreter, imports and connection included, next to the mark's growth during the import.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import structlog

from bench.bench_sync import EESSI_DIR, SPACK_FILE, _catalog, _eessi_mirror, _peak_rss
from bench.bench_sync import _reset_peak_rss as _current_rss
from syncd.config import Settings
from syncd.db.engine import make_engine
from syncd.domain import CatalogSnapshot
from syncd.sync import sync_catalog

MB = 1024 * 1024
BUDGET_FACTOR = 3
BUDGET_EXTRA_MB = 150
SOURCES = ("huge", "spack", "eessi")


def huge_file(versions: int) -> Path:
    """A repology.json with one package of `versions` versions (written once per size)."""
    path = Path(tempfile.gettempdir()) / f"syncd-bench-huge-{os.getuid()}-{versions}.json"
    if path.exists():
        return path
    entries = []
    for i in range(versions):
        number = f"{i // 10000}.{i // 100 % 100}.{i % 100}"
        entries.append(
            {
                "downloads": [
                    f"https://example.org/releases/huge/huge-{number}.tar.gz",
                    f"https://mirror.example.org/releases/huge/huge-{number}.tar.gz",
                ],
                "version": number,
            }
        )
    package = {
        "alias": [],
        "categories": ["windows", "detectable", "build-tools"],  # 4 targets per version
        "dependencies": [f"dependency-{k}" for k in range(10)],
        "homepages": ["https://example.org/huge"],
        "licenses": ["MIT"],
        "maintainers": ["someone"],
        "name": "huge",
        "summary": "One package with very many versions.",
        "version": entries,
    }
    doc = {
        "last_update": "2026-11-27 05:38:00",
        "num_packages": 1,
        "packages": {"huge": package},
        "repository_name": "spack",
    }
    path.write_text(json.dumps(doc, separators=(",", ":")))
    return path


def upstream_bytes(source: str, versions: int) -> int:
    """The uncompressed size of what the import reads."""
    if source == "huge":
        return huge_file(versions).stat().st_size
    if source == "spack":
        with gzip.open(SPACK_FILE, "rb") as stream:
            return sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 20), b""))
    return sum(p.stat().st_size for p in _eessi_mirror().glob("*.json"))


def load(source: str, versions: int) -> CatalogSnapshot:
    from adapters.fetch import Fetcher

    settings = Settings(allow_file_sources=True)
    fetcher = Fetcher(settings)
    if source == "huge":
        from adapters.spack import SpackAdapter

        uri = huge_file(versions).as_uri()
        snap = SpackAdapter(settings).fetch_snapshot(fetcher, source=uri)
    else:
        from bench.bench_sync import load_snapshot

        snap = load_snapshot(source)
    assert snap is not None
    snap.catalog.rolling = False  # the benchmark labels its catalog rows itself
    return snap


def worker(source: str, url: str, versions: int) -> dict[str, Any]:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    import adapters.eessi
    import adapters.spack  # noqa: F401  (imports belong to the baseline)

    engine = make_engine(url)
    catalog_id = _catalog(engine, source, f"memory-{os.getpid()}")
    before_kb = _current_rss()
    stats = sync_catalog(engine, catalog_id, load(source, versions))
    peak_kb = _peak_rss()
    engine.dispose()
    return {
        "rows": stats.rows_written,
        "baseline_mb": before_kb / 1024,
        "peak_mb": peak_kb / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", nargs=3, metavar=("SOURCE", "URL", "VERSIONS"))
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--versions", type=int, default=100_000, help="versions of 'huge'")
    args = parser.parse_args()
    if args.worker:
        source, url, versions = args.worker
        print(json.dumps(worker(source, url, int(versions))))
        return 0

    from syncd.db.migrate import upgrade
    from tests.support.services import postgres_database

    if not SPACK_FILE.exists() or not EESSI_DIR.is_dir():
        print(f"upstream samples missing under {SPACK_FILE.parents[1]}: only 'huge' runs")
    print(f"syncd import memory, PostgreSQL, Python {sys.version.split()[0]}")
    print(f"budget: peak RSS <= {BUDGET_FACTOR}x uncompressed upstream + {BUDGET_EXTRA_MB} MB")
    print(f"{'source':<8} {'upstream MB':>12} {'rows':>9} {'peak RSS MB':>12} "
          f"{'growth MB':>10} {'x input':>8} {'budget MB':>10}  verdict")  # fmt: skip
    failed = False
    with postgres_database("syncd_bench_memory") as url:
        upgrade(url)
        for source in args.sources.split(","):
            size = upstream_bytes(source, args.versions)
            cmd = [sys.executable, "-m", "bench.bench_memory", "--worker", source, url]
            proc = subprocess.run(
                [*cmd, str(args.versions)], capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                print(f"{source:<8} NOT MEASURED:\n{proc.stderr[-3000:]}")
                failed = True
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            budget = BUDGET_FACTOR * size / MB + BUDGET_EXTRA_MB
            growth = r["peak_mb"] - r["baseline_mb"]
            ok = r["peak_mb"] <= budget
            failed |= not ok
            print(
                f"{source:<8} {size / MB:>12.1f} {r['rows']:>9} {r['peak_mb']:>12.1f} "
                f"{growth:>10.1f} {r['peak_mb'] / (size / MB):>8.1f} {budget:>10.1f}  "
                f"{'ok' if ok else 'OVER BUDGET'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
