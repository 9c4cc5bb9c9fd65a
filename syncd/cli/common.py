"""What every command body needs: the "syncd: " error line and the resources built from settings.

Shared so that import, update, discover and redrive word their errors alike and build (and
close) the engine, adapters and fetcher the same way.
"""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy import Engine

from syncd.config import Settings


def _error(text: str) -> None:
    print(f"syncd: {text}", file=sys.stderr)


def _engine(settings: Settings) -> Engine:
    from syncd.db.engine import make_engine

    return make_engine(settings.database_url)


def _adapters(settings: Settings) -> dict[str, Any]:
    from adapters.base import load_adapters

    return load_adapters(settings)


def _fetcher(settings: Settings) -> Any:
    from adapters.fetch import Fetcher

    return Fetcher(settings)


def _close(fetcher: Any) -> None:
    close = getattr(fetcher, "close", None)
    if callable(close):
        close()
