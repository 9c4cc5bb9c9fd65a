"""The `syncd` command line as a process on a Spack file:// source, and a whole-database
dump to prove that a command wrote nothing (dry runs, keep-missing refreshes)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from syncd.db.tables import Base
from tests.support.upstream_data import dumps, spack_document

REPO = Path(__file__).resolve().parents[2]


def run_syncd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`syncd ARGS` as a process with exactly the SYNCD_* variables of `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.run(
        [sys.executable, "-m", "syncd.cli", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def spack_env(database_url: str, source: Path) -> dict[str, str]:
    return {
        "SYNCD_DATABASE_URL": database_url,
        "SYNCD_SPACK_SOURCE": source.as_uri(),
        "SYNCD_ALLOW_FILE_SOURCES": "true",
        "SYNCD_LOG_LEVEL": "warning",
    }


def database_dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (timestamps, update_errors, outcomes, pending commands
    included), in primary key order."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            query = select(table).order_by(*table.primary_key.columns)
            dump[table.name] = [tuple(row) for row in conn.execute(query)]
    return dump


FIRST = spack_document(12)


def changed_spack() -> dict[str, Any]:
    """FIRST refreshed upstream: pkg-010 and pkg-011 dropped, pkg-100 new, pkg-003's summary
    changed, pkg-004 gained version 9.9.9, pkg-005 lost version 1.5.9."""
    doc = copy.deepcopy(FIRST)
    packages = doc["packages"]
    del packages["pkg-010"], packages["pkg-011"]
    packages["pkg-100"] = dict(copy.deepcopy(packages["pkg-001"]), name="pkg-100")
    packages["pkg-003"]["summary"] = "Changed upstream.\n"
    packages["pkg-004"]["version"].append(
        {"downloads": ["https://x.example/a.tgz"], "version": "9.9.9"}
    )
    packages["pkg-005"]["version"] = packages["pkg-005"]["version"][:1]
    doc["num_packages"] = 11
    return doc


# What changed_spack() changes in FIRST, as (kind, package, version), targets aside: the news
# a reader of the sync history cares about ...
CHANGED_SPACK_NEWS = {
    ("package_added", "pkg-100", ""),
    ("package_removed", "pkg-010", ""),
    ("package_removed", "pkg-011", ""),
    ("package_updated", "pkg-003", ""),  # summary
    ("version_added", "pkg-004", "9.9.9"),
    ("version_added", "pkg-100", "0.1.10"),
    ("version_added", "pkg-100", "1.1.9"),
    ("version_removed", "pkg-005", "1.5.9"),
    ("version_removed", "pkg-010", "0.10.10"),
    ("version_removed", "pkg-010", "1.10.9"),
    ("version_removed", "pkg-010", "2.10.8"),
    ("version_removed", "pkg-011", "0.11.10"),
    ("version_removed", "pkg-011", "1.11.9"),
    ("version_removed", "pkg-011", "2.11.8"),
    ("version_removed", "pkg-011", "3.11.7"),
}
# ... and the updates of derived fields only that come with them (counts, positions).
CHANGED_SPACK_DERIVED = {
    ("package_updated", "pkg-004", ""),  # version count
    ("package_updated", "pkg-005", ""),
    ("version_updated", "pkg-004", "0.4.10"),  # no longer the newest: its position moved
    ("version_updated", "pkg-005", "0.5.10"),
}


def truncated_spack(keep: int) -> dict[str, Any]:
    """FIRST with only its first `keep` packages left (a truncated upstream)."""
    doc = copy.deepcopy(FIRST)
    names = [f"pkg-{i:03d}" for i in range(keep)]
    doc["packages"] = {k: v for k, v in doc["packages"].items() if k in names}
    return doc


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_bytes(dumps(doc))
