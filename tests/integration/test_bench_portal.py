"""bench/bench_portal.py runs end to end at its --quick size (synthetic data, a second of
load): every request class answers 200 in both modes and is reported, on both backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_portal import CLASSES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_quick_run_reports_every_class(backend: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_portal", "--quick", "--backend", backend],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "single client, cache off" in out
    assert "syncd vs bare: throughput" in out
    assert "loadgen CPU" in out
    slowest = out.split("slowest 5 requests:\n", 1)[1].splitlines()[:5]
    assert all(" ms  " in line and "/api/" in line for line in slowest), slowest
    for name in CLASSES:
        # Once in the single-client table, once in the mix's per-class table.
        assert sum(line.startswith(f"{name} ") for line in out.splitlines()) == 2, name
