"""syncd.redaction: URL credentials hidden in any text, and kept on a write-back."""

from __future__ import annotations

import pytest

from syncd.errors import PermanentError, UpstreamError
from syncd.metrics import catalog_label
from syncd.redaction import keep_stored_credentials, redact_urls


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:secret@mirror/x", "https://***@mirror/x"),
        ("https://token@mirror", "https://***@mirror"),
        ("amqp://guest:guest@127.0.0.1:5672/%2F", "amqp://***@127.0.0.1:5672/%2F"),
        # An unencoded "@" in the password: everything before the host's "@" is hidden.
        ("x 'https://u:p@w@host/a' y", "x 'https://***@host/a' y"),
        (
            "Could not connect to https://a:b@h:1/x (redirected from https://c:d@e/f)",
            "Could not connect to https://***@h:1/x (redirected from https://***@e/f)",
        ),
        # No credentials: left alone.
        ("http://host/a@b", "http://host/a@b"),
        ("see https://h and mail a@b.c", "see https://h and mail a@b.c"),
        ("file:///tmp/x@y", "file:///tmp/x@y"),
        ("plain text", "plain text"),
    ],
)
def test_redact_urls(text: str, shown: str) -> None:
    assert redact_urls(text) == shown


def test_a_written_back_redacted_url_keeps_the_stored_credentials() -> None:
    stored = "https://user:secret@mirror/x"
    assert keep_stored_credentials("https://***@mirror/x", stored) == stored
    assert (
        keep_stored_credentials("https://other:pw@mirror/x", stored) == "https://other:pw@mirror/x"
    )
    assert keep_stored_credentials("https://mirror/x", stored) == "https://mirror/x"
    assert keep_stored_credentials("https://***@elsewhere/x", stored) == "https://***@elsewhere/x"
    assert keep_stored_credentials("https://mirror/x", "https://mirror/x") == "https://mirror/x"


def test_error_texts_never_carry_credentials() -> None:
    error = UpstreamError("https://u:secret@mirror/x answered HTTP 404", transient=False)
    assert error.message == str(error) == "https://***@mirror/x answered HTTP 404"
    assert "secret" not in str(PermanentError("Source 'https://u:secret@h/' is refused"))


def test_catalog_labels_can_always_be_exposed() -> None:
    assert catalog_label("EESSI", "2023.06") == "EESSI/2023.06"
    label = catalog_label("EESSI", "\ud800x")
    label.encode("utf-8")  # what the Prometheus exposition does with it
    assert label == "EESSI/\\ud800x"
