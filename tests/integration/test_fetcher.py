"""The shared fetcher against the fake upstream: retries, limits, redirects, conditionals."""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adapters.fetch import Fetcher, FetchResult
from adapters.fetch import policy as policy_module
from syncd.config import Settings
from syncd.errors import UpstreamError
from tests.support.fake_dns import FakeDNS
from tests.support.fake_upstream import FakeUpstream

PATH = "/data/file.json"
PUBLIC = "93.184.215.14"
BODY = b'{"hello": "world", "items": [' + b",".join(b"%d" % i for i in range(2000)) + b"]}"


@pytest.fixture
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(files={PATH: BODY}) as server:
        yield server


class Sleeps(list[float]):
    """A sleep that records instead of waiting, so retry tests take no time."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_fetcher(up: FakeUpstream, sleeps: Sleeps | None = None, **overrides: object) -> Fetcher:
    return Fetcher(up.settings(**overrides), sleep=sleeps if sleeps is not None else Sleeps())


def body(result: FetchResult) -> bytes:
    with result.open() as stream:
        return stream.read()


def test_download_then_conditional_refetch_transfers_no_body(up: FakeUpstream) -> None:
    fetcher = make_fetcher(up)
    first = fetcher.fetch(up.url(PATH))
    assert first.status == 200 and body(first) == BODY
    assert first.bytes_downloaded == len(BODY) == fetcher.bytes_downloaded
    assert set(first.validators) == {"etag", "last_modified", "hash"}
    assert first.validators["hash"] == hashlib.sha256(BODY).hexdigest()  # taken as it streamed

    second = fetcher.fetch(up.url(PATH), validators={up.url(PATH): first.validators})
    assert second.not_modified and second.path is None
    assert second.validators["etag"] == first.validators["etag"]
    last = up.requests_for(PATH)[-1]
    assert last.status == 304 and last.body_bytes == 0
    assert last.headers["if-none-match"] == first.validators["etag"]
    assert fetcher.bytes_downloaded == len(BODY)


def test_last_modified_alone_is_a_validator(up: FakeUpstream) -> None:
    fetcher = make_fetcher(up)
    first = fetcher.fetch(up.url(PATH))
    only_date = {up.url(PATH): {"last_modified": first.validators["last_modified"]}}
    assert fetcher.fetch(up.url(PATH), validators=only_date).not_modified


def test_changed_etag_with_identical_content_downloads_again(up: FakeUpstream) -> None:
    fetcher = make_fetcher(up)
    up.fault(PATH, "changed_etag")
    first = fetcher.fetch(up.url(PATH))
    second = fetcher.fetch(up.url(PATH), validators={up.url(PATH): first.validators})
    assert second.status == 200 and body(second) == BODY
    assert second.validators["etag"] != first.validators["etag"]
    # The same body under a new ETag: not modified by its hash, the body kept all the same.
    assert second.same_body and second.not_modified and fetcher.thread_same_hashes == 1
    up.set_file(PATH, BODY + b" ")
    third = fetcher.fetch(up.url(PATH), validators={up.url(PATH): first.validators})
    assert not third.not_modified and third.validators["hash"] != first.validators["hash"]


def test_a_published_hash_equal_to_the_stored_one_skips_the_request(up: FakeUpstream) -> None:
    fetcher = make_fetcher(up)
    first = fetcher.fetch(up.url(PATH))
    up.reset_requests()
    stored = {up.url(PATH): first.validators}
    same = fetcher.fetch(up.url(PATH), validators=stored, published_hash=first.validators["hash"])
    assert same.not_modified and same.path is None and up.requests == []
    assert same.validators == first.validators  # what the next sync stores again
    other = fetcher.fetch(up.url(PATH), validators=stored, published_hash="0" * 64)
    assert other.status == 304 and len(up.requests) == 1  # asked, conditionally


def test_max_bytes_lowers_the_limit_for_one_fetch(up: FakeUpstream) -> None:
    with pytest.raises(UpstreamError, match=f"limit of {len(BODY) - 1} bytes"):
        make_fetcher(up).fetch(up.url(PATH), max_bytes=len(BODY) - 1)
    assert body(make_fetcher(up).fetch(up.url(PATH), max_bytes=len(BODY))) == BODY


def test_temporary_file_is_removed_on_close(up: FakeUpstream) -> None:
    result = make_fetcher(up).fetch(up.url(PATH))
    assert result.path is not None and result.path.exists()
    result.close()
    assert not result.path.exists()


def test_gzip_encoded_body_is_decoded_and_counted_on_the_wire(up: FakeUpstream) -> None:
    big = b'{"x": "' + b"a" * 200_000 + b'"}'
    up.set_file("/big.json", gzip.compress(big))
    fetcher = make_fetcher(up)
    result = fetcher.fetch(up.url("/big.json"))
    assert body(result) == big
    assert up.requests_for("/big.json")[0].body_bytes == result.bytes_downloaded < len(big)


def test_500_is_retried_then_succeeds(up: FakeUpstream) -> None:
    sleeps = Sleeps()
    up.fault(PATH, "500", times=1)
    result = make_fetcher(up, sleeps, fetch_retries=2).fetch(up.url(PATH))
    assert body(result) == BODY
    assert [r.status for r in up.requests_for(PATH)] == [500, 200]
    assert len(sleeps) == 1


def test_persistent_500_is_a_transient_error_after_the_retry_budget(up: FakeUpstream) -> None:
    up.fault(PATH, "500")
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up, fetch_retries=2).fetch(up.url(PATH))
    err = caught.value
    assert err.transient and err.status == 500 and err.url == up.url(PATH)
    assert "HTTP 500" in err.message and "3 attempts" in err.message
    assert len(up.requests_for(PATH)) == 3


def test_429_honours_retry_after(up: FakeUpstream) -> None:
    sleeps = Sleeps()
    up.fault(PATH, "429", times=1, retry_after=7)
    result = make_fetcher(up, sleeps).fetch(up.url(PATH))
    assert body(result) == BODY
    assert sleeps == [7.0]


def test_429_with_a_long_retry_after_goes_back_to_the_caller(up: FakeUpstream) -> None:
    sleeps = Sleeps()
    up.fault(PATH, "429", retry_after=3600)
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up, sleeps, fetch_retries=3).fetch(up.url(PATH))
    assert caught.value.transient and caught.value.status == 429
    assert caught.value.retry_after == 3600
    assert sleeps == [] and len(up.requests_for(PATH)) == 1


def test_404_is_permanent_unless_the_file_is_optional(up: FakeUpstream) -> None:
    fetcher = make_fetcher(up)
    with pytest.raises(UpstreamError) as caught:
        fetcher.fetch(up.url("/missing.json"))
    assert not caught.value.transient and caught.value.status == 404
    assert "check the source URL" in caught.value.message
    absent = fetcher.fetch(up.url("/missing.json"), optional=True)
    assert absent.absent and absent.validators == {"absent": True}


def test_stalled_response_is_a_transient_timeout(up: FakeUpstream) -> None:
    up.fault(PATH, "stall", delay=3)
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up, fetch_read_timeout=0.2, fetch_retries=0).fetch(up.url(PATH))
    assert caught.value.transient and "Timed out" in caught.value.message


def test_slow_drip_hits_the_read_timeout(up: FakeUpstream) -> None:
    up.fault(PATH, "slow", drip_bytes=100, delay=2)
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up, fetch_read_timeout=0.2, fetch_retries=0).fetch(up.url(PATH))
    assert caught.value.transient and "stalled" in caught.value.message


def test_slow_drip_within_the_read_timeout_hits_the_deadline(up: FakeUpstream) -> None:
    up.fault(PATH, "slow", drip_bytes=10, delay=0.05)
    fetcher = Fetcher(up.settings(fetch_retries=0), sleep=Sleeps(), deadline=0.3)
    with pytest.raises(UpstreamError) as caught:
        fetcher.fetch(up.url(PATH))
    assert caught.value.transient and "took longer than 0.3 s" in caught.value.message


def test_trickled_response_headers_hit_the_deadline(up: FakeUpstream) -> None:
    """Each header byte arrives well within the read timeout, so only a deadline over the
    whole request (headers included) ends the fetch; no attempt is made after it."""
    up.fault(PATH, "slow_headers", delay=0.05, header_bytes=400)  # 20 s of headers
    fetcher = Fetcher(up.settings(fetch_read_timeout=1.0, fetch_retries=3), deadline=1.0)
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        fetcher.fetch(up.url(PATH))
    seconds = time.monotonic() - started
    fetcher.close()
    assert caught.value.transient
    assert "took longer than 1 s, the deadline for the whole request" in caught.value.message
    assert "response headers" in caught.value.message
    assert seconds < 1.0 + 1.0, f"the fetch took {seconds:.1f} s with a 1 s deadline"
    assert [r.fault for r in up.requests_for(PATH)] == ["slow_headers"]


def test_trickled_headers_through_a_proxy_hit_the_deadline(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a proxy named in the environment the deadline holds too. The fake upstream
    plays the proxy: the request line names the absolute URL, which is the path it serves."""
    target = "http://upstream.test/data/file.json"
    up.set_file(target, BODY)
    up.fault(target, "slow_headers", delay=0.05, header_bytes=400)
    for name in ("ALL_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", up.base_url)
    fetcher = Fetcher(up.settings(fetch_read_timeout=1.0, fetch_retries=0), deadline=1.0)
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        fetcher.fetch(target)
    seconds = time.monotonic() - started
    fetcher.close()
    assert caught.value.transient and "the deadline" in caught.value.message
    assert seconds < 1.0 + 1.0, f"the fetch took {seconds:.1f} s with a 1 s deadline"
    assert [r.fault for r in up.requests_for(target)] == ["slow_headers"]


def test_truncated_transfer_is_transient(up: FakeUpstream) -> None:
    up.fault(PATH, "truncated_body")
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up, fetch_retries=0).fetch(up.url(PATH))
    assert caught.value.transient and "broke before the whole body" in caught.value.message


@pytest.mark.parametrize("declare_length", [False, True])
def test_oversized_body_is_aborted_and_permanent(up: FakeUpstream, declare_length: bool) -> None:
    up.fault(PATH, "oversized", declare_length=declare_length)
    fetcher = make_fetcher(up, fetch_max_bytes=1_000_000)
    with pytest.raises(UpstreamError) as caught:
        fetcher.fetch(up.url(PATH))
    assert not caught.value.transient
    assert "SYNCD_FETCH_MAX_BYTES" in caught.value.message
    assert fetcher.bytes_downloaded < 1_200_000
    assert len(up.requests_for(PATH)) == 1  # not retried


def test_redirect_to_another_host_is_refused(up: FakeUpstream) -> None:
    up.fault(PATH, "redirect", redirect_host="localhost")
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up).fetch(up.url(PATH))
    assert not caught.value.transient
    assert "SYNCD_ALLOWED_REDIRECT_HOSTS" in caught.value.message


@pytest.mark.parametrize("host", ["[::1", "127.0.0.1:99999/x#"])
def test_redirect_to_a_malformed_url_is_permanent(up: FakeUpstream, host: str) -> None:
    up.fault(PATH, "redirect", redirect_host=host)
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up, allowed_redirect_hosts=["127.0.0.1"]).fetch(up.url(PATH))
    assert not caught.value.transient, caught.value.message
    assert "redirected to an invalid URL" in caught.value.message
    assert len(up.requests_for(PATH)) == 1  # not retried


def test_redirect_to_an_allowed_host_is_followed(up: FakeUpstream) -> None:
    up.fault(PATH, "redirect", times=1, redirect_host="localhost")
    result = make_fetcher(up, allowed_redirect_hosts=["localhost"]).fetch(up.url(PATH))
    assert body(result) == BODY
    assert result.final_url.startswith("http://localhost:")


def test_redirect_into_a_private_network_is_refused_without_the_setting(
    up: FakeUpstream,
) -> None:
    up.fault(PATH, "redirect", redirect_host="localhost")
    settings = up.settings(allowed_redirect_hosts=["localhost"], allow_private_sources=False)
    # The first hop is refused already (127.0.0.1 is private) - the guard runs per URL.
    with pytest.raises(UpstreamError) as caught:
        Fetcher(settings).fetch(up.url(PATH))
    assert not caught.value.transient and "SYNCD_ALLOW_PRIVATE_SOURCES" in caught.value.message


def test_connection_refused_is_transient(up: FakeUpstream) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up, fetch_retries=1).fetch(f"http://127.0.0.1:{port}/x.json")
    assert caught.value.transient and "Could not connect" in caught.value.message


def test_file_sources(tmp_path: Path, up: FakeUpstream) -> None:
    path = tmp_path / "mirror.json"
    path.write_bytes(BODY)
    url = path.as_uri()
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up).fetch(url)
    assert not caught.value.transient and "SYNCD_ALLOW_FILE_SOURCES" in caught.value.message

    fetcher = make_fetcher(up, allow_file_sources=True)
    first = fetcher.fetch(url)
    assert body(first) == BODY and fetcher.bytes_downloaded == len(BODY)
    first.close()
    assert path.exists()  # a mirror file is never deleted
    assert fetcher.fetch(url, validators={url: first.validators}).not_modified
    os.utime(path, (path.stat().st_mtime + 60, path.stat().st_mtime + 60))  # copied again
    again = fetcher.fetch(url, validators={url: first.validators})
    assert again.same_body and again.validators["etag"] != first.validators["etag"]
    with pytest.raises(UpstreamError) as missing:
        fetcher.fetch((tmp_path / "nope.json").as_uri())
    assert not missing.value.transient
    assert fetcher.fetch((tmp_path / "nope.json").as_uri(), optional=True).absent


# --- connections are pinned to vetted addresses (DNS rebinding) ------------------------------


@pytest.mark.parametrize("loopback", ["127.0.0.1", "::ffff:127.0.0.1"])
def test_dns_rebinding_cannot_reach_a_loopback_server(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch, loopback: str
) -> None:
    """The name answers a public address to the check and loopback to the connection."""
    dns = FakeDNS(monkeypatch, rebind=[[PUBLIC], [loopback]])
    url = f"http://rebind.test:{up.port}{PATH}"
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up, allow_private_sources=False).fetch(url)
    assert not caught.value.transient
    assert f"rebind.test resolves to {loopback} when connecting" in caught.value.message
    assert "SYNCD_ALLOW_PRIVATE_SOURCES" in caught.value.message
    assert dns.lookups == ["rebind.test", "rebind.test"]  # the check, one connect; no retry
    assert up.requests_for(PATH) == []
    # Control: the connect-time answer does reach the server once private hosts are allowed,
    # so the refusal above was the pinning, not an unreachable address.
    assert body(make_fetcher(up).fetch(url)) == BODY
    assert len(up.requests_for(PATH)) == 1


def test_allowed_fetch_connects_to_the_address_it_resolved(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = FakeDNS(monkeypatch, mirror=[["127.0.0.1"]])
    result = make_fetcher(up).fetch(f"http://mirror.test:{up.port}{PATH}")
    assert body(result) == BODY
    # With private sources allowed the check does not resolve; the connection does, once.
    assert dns.lookups == ["mirror.test"]
    assert up.requests_for(PATH)[0].headers["host"] == f"mirror.test:{up.port}"


@pytest.mark.parametrize("host", ["[::1]", "[::ffff:127.0.0.1]", "[fe80::1]"])
def test_ipv6_loopback_and_link_local_literals_are_refused(up: FakeUpstream, host: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        make_fetcher(up, allow_private_sources=False).fetch(f"http://{host}:{up.port}{PATH}")
    assert not caught.value.transient and "SYNCD_ALLOW_PRIVATE_SOURCES" in caught.value.message
    assert up.requests_for(PATH) == []


@pytest.fixture
def upstream_counts_as_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let 127.0.0.1 (the fake upstream) stand for a public upstream, so a strict fetcher
    can reach its first hop; every other address, ::ffff:127.0.0.1 included, is judged as
    usual. Only the address test is replaced, not where it is applied."""
    real = policy_module._is_public
    stand_in = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(policy_module, "_is_public", lambda a: a == stand_in or real(a))


@pytest.mark.usefixtures("upstream_counts_as_public")
def test_redirect_to_a_host_resolving_privately_is_refused(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    FakeDNS(monkeypatch, internal=[["169.254.169.254"]])
    up.fault(PATH, "redirect", redirect_host="internal.test")
    settings = up.settings(allow_private_sources=False, allowed_redirect_hosts=["internal.test"])
    with pytest.raises(UpstreamError) as caught:
        Fetcher(settings).fetch(up.url(PATH))
    assert not caught.value.transient
    assert "redirected to a refused location" in caught.value.message
    assert "169.254.169.254" in caught.value.message
    assert len(up.requests_for(PATH)) == 1  # the redirecting hop only


@pytest.mark.usefixtures("upstream_counts_as_public")
def test_redirect_to_a_rebinding_host_is_refused_at_connect_time(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The redirect target passes the check, then answers a private (but reachable: it is
    the fake upstream) address to the connection."""
    dns = FakeDNS(monkeypatch, rebind=[["127.0.0.1"], ["::ffff:127.0.0.1"]])
    up.fault(PATH, "redirect", times=1, redirect_host="rebind.test")
    settings = up.settings(allow_private_sources=False, allowed_redirect_hosts=["rebind.test"])
    with pytest.raises(UpstreamError) as caught:
        Fetcher(settings).fetch(up.url(PATH))
    assert not caught.value.transient
    assert caught.value.message.startswith(f"{up.url(PATH)} redirected to a refused location")
    assert "::ffff:127.0.0.1 when connecting" in caught.value.message
    assert dns.lookups == ["rebind.test", "rebind.test"]
    assert len(up.requests_for(PATH)) == 1


def test_environment_proxy_is_used_and_resolves_the_name_itself(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proxies from the environment still apply (the fake upstream plays the proxy). Through
    a proxy nothing is pinned: syncd connects to the proxy, which resolves the upstream."""
    for name in ("ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", up.base_url)
    dns = FakeDNS(monkeypatch, catalog=[[PUBLIC]])
    url = "http://catalog.test/data/file.json"
    up.set_file(url, BODY)  # a forward proxy is asked for the absolute URL
    result = make_fetcher(up, allow_private_sources=False).fetch(url)
    assert body(result) == BODY
    assert up.requests_for(url)[0].headers["host"] == "catalog.test"
    assert dns.lookups == ["catalog.test"]  # the check only; the connection went to the proxy


def test_tls_is_verified_against_the_host_name_not_the_pinned_ip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real TLS server on 127.0.0.1 with a certificate for mirror.test only: reached by
    that name the certificate verifies although the connection goes to the pinned IP; by
    another name resolving to the same IP it does not."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=mirror.test"),
            *("-addext", "subjectAltName=DNS:mirror.test"),
        ],
        check=True,
        capture_output=True,
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the fetcher trusts only this cert
        dns = FakeDNS(monkeypatch, mirror=[["127.0.0.1"]], other=[["127.0.0.1"]])
        port = server.server_address[1]
        settings = Settings(allow_private_sources=True, fetch_retries=0)
        with Fetcher(settings) as fetcher:
            assert body(fetcher.fetch(f"https://mirror.test:{port}/x.json")) == BODY
            with pytest.raises(UpstreamError) as caught:
                fetcher.fetch(f"https://other.test:{port}/x.json")
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
        # A wrong certificate stays wrong: not retried.
        assert not caught.value.transient
        assert dns.lookups == ["mirror.test", "other.test"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
