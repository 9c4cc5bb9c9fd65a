"""The /metrics listener of worker and scheduler processes (syncd/metrics_server.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from syncd import metrics
from syncd.config import Settings
from syncd.metrics_server import start_metrics_server

PROC_NET_TCP = Path("/proc/net/tcp")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses listening on `port`, from the kernel's socket table."""
    found = set()
    for line in PROC_NET_TCP.read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_off_unless_a_port_is_set() -> None:
    assert start_metrics_server(Settings(metrics_port=0)) is False


@pytest.mark.skipif(not PROC_NET_TCP.exists(), reason="needs Linux's /proc/net/tcp")
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_listens_on_the_configured_address(host: str) -> None:
    port = _free_port()
    assert start_metrics_server(Settings(metrics_port=port, metrics_host=host)) is True
    assert _listening_addresses(port) == {host}
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200
    # syncd's own metrics are registered by importing syncd.metrics, as every process does.
    assert f"{metrics.COMMANDS_PUBLISHED._name}_total" in answer.text


def test_a_port_in_use_stops_the_process_with_a_clear_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as stopped:
            start_metrics_server(Settings(metrics_port=port, metrics_host="127.0.0.1"))
    assert f"SYNCD_METRICS_PORT {port} on 127.0.0.1 cannot be served" in str(stopped.value)
    assert "a port of its own" in str(stopped.value)
