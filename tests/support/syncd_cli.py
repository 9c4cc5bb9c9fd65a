"""The real `syncd` console entry point in a subprocess, on a database of the test's own.

done = run_syncd(["import", "EESSI", "--source", uri], tmp_path, db_url)
run_syncd(["export", uuid], tmp_path, db_url, stdout=path)  # the document into a file
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SYNCD = [sys.executable, "-m", "syncd.cli"]


def run_syncd(
    args: list[str],
    cwd: Path,
    db_url: str,
    *,
    stdout: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`syncd ARGS` with only SYNCD_DATABASE_URL (and file sources allowed) set; `stdout`:
    a file that gets the command's standard output."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    base |= {"SYNCD_DATABASE_URL": db_url, "SYNCD_ALLOW_FILE_SOURCES": "true", **(env or {})}
    if stdout is None:
        return subprocess.run(
            [*SYNCD, *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=600
        )
    with stdout.open("w") as out:
        return subprocess.run(
            [*SYNCD, *args], cwd=cwd, env=base, stdout=out, stderr=subprocess.PIPE, text=True,
            timeout=600,
        )  # fmt: skip
