"""A resolver test double: socket.getaddrinfo patched in-process for made-up names.

    dns = FakeDNS(monkeypatch, rebind=[["93.184.215.14"], ["127.0.0.1"]])
    # "rebind.test": the first lookup answers 93.184.215.14, every later one 127.0.0.1
    dns.lookups                                    # ["rebind.test", ...], one per lookup

A keyword names the host `<keyword with _ as ->.test`; its value is the queue of answers
(each a list of IPv4/IPv6 addresses), the last one repeating. Every other host goes to the
real resolver, so IP literals and the real servers of a test resolve as usual. There is no
controllable DNS server on the machine; this is how a DNS-rebinding name is simulated.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest


class FakeDNS:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, **answers: list[list[str]]) -> None:
        self.answers = {name.replace("_", "-") + ".test": a for name, a in answers.items()}
        self.lookups: list[str] = []
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in self.answers:
            return self._real(host, port, *args, **kwargs)
        self.lookups.append(host)
        queue = self.answers[host]
        ips = queue.pop(0) if len(queue) > 1 else queue[0]
        out: list[Any] = []
        for ip in ips:
            if ipaddress.ip_address(ip).version == 6:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port or 0, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0)))
        return out
