"""check_source_allowed: the SSRF guard the fetcher and the API's source_url share."""

from __future__ import annotations

import pytest

from adapters.fetch import check_source_allowed
from syncd.config import Settings
from syncd.errors import PermanentError

DEFAULT = Settings()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/data.json",
        "gopher://example.org/",
        "javascript:alert(1)",
        "/etc/passwd",
        "example.org/data.json",
    ],
)
def test_only_http_https_and_file_schemes(url: str) -> None:
    with pytest.raises(PermanentError, match="only http, https and file"):
        check_source_allowed(url, DEFAULT)


def test_file_sources_need_the_setting() -> None:
    with pytest.raises(PermanentError, match="SYNCD_ALLOW_FILE_SOURCES"):
        check_source_allowed("file:///srv/mirror/repology.json", DEFAULT)
    check_source_allowed("file:///srv/mirror/repology.json", Settings(allow_file_sources=True))


def test_file_url_must_not_name_a_host() -> None:
    with pytest.raises(PermanentError, match="local path"):
        check_source_allowed("file://fileserver/share/x.json", Settings(allow_file_sources=True))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/admin",
        "http://localhost/",
        "http://10.1.2.3/data.json",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "https://[fd00::1]/",
    ],
)
def test_private_and_loopback_hosts_are_refused(url: str) -> None:
    with pytest.raises(PermanentError, match="SYNCD_ALLOW_PRIVATE_SOURCES"):
        check_source_allowed(url, DEFAULT)
    check_source_allowed(url, Settings(allow_private_sources=True))


@pytest.mark.parametrize("url", ["https://8.8.8.8/x.json", "http://[2001:4860:4860::8888]/"])
def test_public_addresses_are_allowed(url: str) -> None:
    check_source_allowed(url, DEFAULT)


def test_url_without_host_is_refused() -> None:
    with pytest.raises(PermanentError, match="no host"):
        check_source_allowed("http:///path", DEFAULT)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/x",
        "http://[::1]]/x",
        "http://example.org:99999/x",
        "http://example.org:-1/x",
        "http://example.org:0/x",
        "http://example.org:8o/x",
    ],
)
def test_malformed_urls_are_a_permanent_refusal(url: str) -> None:
    # Even where any address is allowed: a URL no client can request is never transient.
    with pytest.raises(PermanentError, match="not a valid URL"):
        check_source_allowed(url, Settings(allow_private_sources=True))


def test_eessi_source_files_refuse_a_malformed_source() -> None:
    from adapters.eessi.sources import source_files

    with pytest.raises(PermanentError, match="not a valid URL"):
        source_files("https://[::1/eessi/", extensions=True)
