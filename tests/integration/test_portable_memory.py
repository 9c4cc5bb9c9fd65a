"""`syncd export` streams: its peak memory does not grow with the catalog (the real Spack
data, a 671-package subset against the full 8,913 packages, on PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.integration.test_portable_catalogs import only_catalog
from tests.support.syncd_cli import SYNCD, run_syncd


def peak_rss_kib(args: list[str], cwd: Path, db_url: str, out: Path) -> int:
    """Peak resident memory of `syncd ARGS` (its own, not the test's), stdout into `out`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["SYNCD_DATABASE_URL"] = db_url
    with out.open("wb") as stdout:
        process = subprocess.Popen([*SYNCD, *args], cwd=cwd, env=env, stdout=stdout)
        _pid, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return int(usage.ru_maxrss)  # KiB on Linux


def test_export_memory_is_flat_in_catalog_size(
    tmp_path: Path, pg_url: str, upstream_dir: Path
) -> None:
    sizes: dict[str, tuple[int, int]] = {}
    for name in ("repology.subset.json", "repology.full.json.gz"):
        source = (upstream_dir / "spack" / name).as_uri()
        done = run_syncd(["import", "Spack", "--source", source], tmp_path, pg_url)
        assert done.returncode == 0, done.stderr
        out = tmp_path / f"{name}.export.json"
        rss = peak_rss_kib(["export", only_catalog(pg_url)], tmp_path, pg_url, out)
        sizes[name] = (out.stat().st_size, rss)
    (small_bytes, small_rss), (full_bytes, full_rss) = sizes.values()
    print(f"export peak RSS: subset {small_rss} KiB ({small_bytes} B written), "
          f"full {full_rss} KiB ({full_bytes} B written)")  # fmt: skip
    assert full_bytes > 4 * small_bytes
    # The same budget for a catalog 4.7x larger: growth is the batch, not the catalog.
    assert full_rss < small_rss + 32 * 1024
