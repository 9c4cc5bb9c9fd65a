"""source_url given as an IPv6 transition form that carries an internal IPv4 address.

NAT64, 6to4, IPv4-compatible and IPv4-translated addresses reach the IPv4 address inside
them, and fec0::/10 is routed inside sites: with private sources off, each is a 400 on the
field that named it, in DRF's shape, whichever endpoint it came through.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.api.conftest import CATALOGS

IMPORT = f"{CATALOGS}import_catalog/"

# source_url -> the IPv4 address the refusal names (None: refused as an IPv6 address)
INTERNAL = {
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/": "169.254.169.254",  # NAT64
    "http://[64:ff9b::a00:1]/x.json": "10.0.0.1",
    "http://[64:ff9b:1::7f00:1]/x.json": "127.0.0.1",  # NAT64, local-use prefix
    "http://[2002:a9fe:a9fe::1]/x.json": "169.254.169.254",  # 6to4
    "http://[::127.0.0.1]/x.json": "127.0.0.1",  # IPv4-compatible
    "http://[::ffff:0:c0a8:101]/x.json": "192.168.1.1",  # IPv4-translated
    "https://[fec0::1]/x.json": None,  # site-local
}
# The same forms around a public IPv4 address stay usable (an IPv6-only site reaches IPv4
# upstreams through NAT64).
PUBLIC = ["http://[64:ff9b::5db8:d70e]/x.json", "http://[2002:5db8:d70e::1]/x.json"]


def _check_refusal(response: object, field: str, url: str, carried: str | None) -> None:
    assert getattr(response, "status_code", None) == 400, (url, response)
    body = response.json()  # type: ignore[attr-defined]
    assert list(body) == [field], (url, body)
    assert isinstance(body[field], list) and len(body[field]) == 1, (url, body)
    message = body[field][0]
    assert message.startswith(f"Source {url!r} is refused"), message
    assert "SYNCD_ALLOW_PRIVATE_SOURCES" in message, message
    if carried is not None:
        assert f"carries {carried}" in message, message


def test_ipv6_forms_of_internal_addresses_are_refused(
    client: TestClient, staff: dict[str, str]
) -> None:
    created = client.post(
        CATALOGS, json={"name": "Mirror", "version": "1", "source_url": PUBLIC[0]}, headers=staff
    )
    assert created.status_code == 201, created.text
    item = f"{CATALOGS}{created.json()['uuid']}/"
    for url, carried in INTERNAL.items():
        body = {"name": "Mirror", "version": "2", "source_url": url}
        _check_refusal(client.post(CATALOGS, json=body, headers=staff), "source_url", url, carried)
        patched = client.patch(item, json={"source_url": url}, headers=staff)
        _check_refusal(patched, "source_url", url, carried)
        imported = client.post(IMPORT, json={"name": "Spack", "source": url}, headers=staff)
        _check_refusal(imported, "source", url, carried)
    assert client.get(item).json()["source_url"] == PUBLIC[0]  # no PATCH went through


def test_ipv6_forms_of_public_addresses_are_accepted(
    client: TestClient, staff: dict[str, str]
) -> None:
    for n, url in enumerate(PUBLIC):
        body = {"name": "Mirror", "version": str(n), "source_url": url}
        response = client.post(CATALOGS, json=body, headers=staff)
        assert response.status_code == 201, (url, response.text)
