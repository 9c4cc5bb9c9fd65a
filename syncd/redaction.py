"""Credentials in URLs: stored where the worker needs them, shown nowhere.

A source such as `https://user:secret@mirror.example/eessi/` must reach the fetcher as is,
but every text a person or a collector reads (API fields, update_errors, log lines, error
messages, metric labels) shows it as `https://***@mirror.example/eessi/`: the reader still
sees that the source carries credentials, never which. One function, `redact_urls`, does it
for any text; it imports nothing of ours, so adapters and every syncd layer can use it.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"

# scheme "://" userinfo "@": the userinfo is everything of the authority before its last
# "@" (as urllib.parse splits it), so a password with an unencoded "@" is hidden whole.
# Quotes, whitespace and brackets end it: a URL inside a repr or a sentence stops there.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s'\"<>()\[\]{}]*@")


def redact_urls(text: str) -> str:
    """`text` with the user-info part of every URL in it replaced by `***`."""
    # Most texts hold no URL with credentials: two substring tests are far cheaper than
    # the regex, and log lines pass through here one field at a time.
    if "@" not in text or "://" not in text:
        return text
    return _USERINFO.sub(lambda m: m.group("scheme") + REDACTED + "@", text)


def keep_stored_credentials(submitted: str, stored: str) -> str:
    """The value to store when a client sends back `submitted` for a URL field holding
    `stored`: a client that read the object (credentials redacted) and writes it back
    unchanged must not replace the credentials with `***`."""
    if submitted != stored and submitted == redact_urls(stored):
        return stored
    return submitted


def redact_value(value: Any) -> Any:
    """`value` with redact_urls applied to every string in it (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact_urls(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value
