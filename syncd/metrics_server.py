"""/metrics for the processes without the HTTP API (worker, scheduler).

`start_metrics_server(settings)` serves the default Prometheus registry on
SYNCD_METRICS_PORT (0 = off) from a daemon thread. When the worker runs several processes,
set PROMETHEUS_MULTIPROC_DIR before they start: each process then writes its samples to that
folder and the server (in the parent) aggregates them.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from syncd.config import Settings
from syncd.logging import get_logger

log = get_logger(__name__)


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


def start_metrics_server(settings: Settings) -> bool:
    """Serve /metrics on settings.metrics_host:metrics_port; False (and nothing started) when
    the port is 0."""
    if settings.metrics_port <= 0:
        return False
    addr = settings.metrics_host
    try:
        start_http_server(settings.metrics_port, addr=addr, registry=_registry())
    except OSError as exc:  # most often: another process (another syncd unit?) has the port
        raise SystemExit(
            f"syncd: SYNCD_METRICS_PORT {settings.metrics_port} on {addr} cannot be served "
            f"({exc.strerror or exc}); give each process on this host a port of its own"
        ) from None
    log.info("metrics_server_started", port=settings.metrics_port, addr=addr)
    return True
