"""Body of `syncd discover`: what each adapter offers upstream, next to the database.

Its own module because it only reads: it publishes nothing and changes no catalog, so it runs
in the embedded mode and with a broker alike.
"""

from __future__ import annotations

import argparse
import json

from syncd.cli.common import _adapters, _close, _engine, _fetcher
from syncd.config import Settings


def discover_command(settings: Settings, args: argparse.Namespace) -> int:
    """`syncd discover [--json]`: what each adapter offers upstream, next to the database."""
    from syncd.discovery import DiscoverCache, discover

    engine = _engine(settings)
    fetcher = _fetcher(settings)
    try:
        entries = discover(
            engine,
            _adapters(settings),
            fetcher,
            cache=DiscoverCache(settings.discover_cache_seconds),
        )
    finally:
        _close(fetcher)
        engine.dispose()
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print("no adapters are installed")
        return 0
    header = ("NAME", "TYPE", "LATEST UPSTREAM", "LAST MODIFIED", "UPDATE")
    rows = [
        (
            e["name"],
            e["catalog_type"],
            e["latest_version"] or "(upstream unreachable)",
            e["existing_version"] or "-",
            "yes" if e["update_available"] else "no",
        )
        for e in entries
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0 if all(e["latest_version"] for e in entries) else 1
