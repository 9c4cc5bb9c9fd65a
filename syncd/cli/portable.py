"""`syncd export UUID` and `syncd import-file FILE [--keep-uuids]`: a catalog carried between
sites as one JSON document (docs/catalog-export.schema.json).

import-file always runs in this process, also with a broker: the file is on this machine,
where no worker may see it. It calls the same import command as `syncd import`, with an
adapter that reads the file (adapters/portable.py), so the sync engine writes it as it
writes any upstream.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from syncd.cli.common import _close, _engine, _error
from syncd.config import Settings
from syncd.errors import SyncdError

Adder = Callable[[str, Callable[[Settings, argparse.Namespace], int], str], argparse.ArgumentParser]


def add_portable_commands(add: Adder, force_help: str) -> None:
    p = add("export", export_command, "write one catalog as a portable JSON document to stdout")
    p.add_argument("uuid", help="catalog uuid (with or without hyphens)")
    p = add("import-file", import_file_command, "load a catalog exported by `syncd export`")
    p.add_argument("file", help="path of the exported JSON document (may be gzip)")
    p.add_argument(
        "--keep-uuids",
        action="store_true",
        help="give new rows the uuids of the exporting site (catalog, packages, ...)",
    )
    p.add_argument("--force", action="store_true", help=force_help)


def export_command(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.export import export_catalog

    engine = _engine(settings)
    pieces = export_catalog(engine, args.uuid)
    try:
        first = next(pieces)  # an unknown catalog fails here, before anything is written
        out = sys.stdout
        out.write(first)
        for piece in pieces:
            out.write(piece)
        out.flush()
    except SyncdError as exc:
        _error(f"export failed: {exc.message}")
        return 1
    except BrokenPipeError:
        return 1
    finally:
        pieces.close()
        engine.dispose()
    return 0


def import_file_command(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.fetch import Fetcher
    from adapters.portable import PortableCatalogFile
    from syncd import service

    path = Path(args.file).resolve()
    what = f"import of {path.name}"
    # The operator names a file of this machine: no SYNCD_ALLOW_FILE_SOURCES needed for it.
    fetcher = Fetcher(dataclasses.replace(settings, allow_file_sources=True))
    engine = _engine(settings)
    try:
        adapter = PortableCatalogFile.open(fetcher, path.as_uri(), keep_uuids=args.keep_uuids)
        info = adapter.header.info
        result = service.import_catalog(
            engine,
            {adapter.name: adapter},
            fetcher,
            name=adapter.name,
            version=info.version,
            source=path.as_uri(),
            force=args.force,
            catalog_uuid=adapter.header.uuid if args.keep_uuids else None,
        )
    except SyncdError as exc:
        _error(f"{what} failed: {exc.message}")
        return 1
    except Exception as exc:
        _error(f"{what} failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        _close(fetcher)
        engine.dispose()
    if args.keep_uuids and adapter.header.uuid and result.catalog_uuid != adapter.header.uuid:
        print(
            f"{what}: the catalog existed here as {result.catalog_uuid}; it keeps that uuid",
            file=sys.stderr,
        )
    if not result.changed:
        outcome = "file unchanged since its last import"
    elif result.stats is not None:
        counts = result.stats.as_dict()
        outcome = ", ".join(
            f"{kind} +{c['created']} ~{c['updated']} -{c['deleted']}" for kind, c in counts.items()
        )
    else:
        outcome = "done"
    print(f"{what}: {outcome}; catalog {result.catalog_uuid} {result.name} {result.version}")
    return 0
