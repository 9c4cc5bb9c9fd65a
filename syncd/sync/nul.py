"""NUL, the one character PostgreSQL stores in neither text nor jsonb ("text fields cannot
contain NUL (0x00) bytes", and jsonb refuses the escape "\\u0000" at any depth, keys too).

One upstream value holding it would fail the whole sync, and every refresh after it, so every
upstream string the sync writes passes this rule, on both backends alike: a NUL becomes
U+FFFD, the replacement character (removing it could make two distinct keys one, and U+FFFD
shows a reader that something was there), and the sync names the value in its warnings.
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
REPLACEMENT = "\ufffd"
# How a JSON encoder writes NUL: a JSON text without this substring holds no NUL anywhere.
# (A literal backslash + "u0000" matches too; `without_nul` then changes nothing.)
ESCAPED_NUL = "\\u0000"


def clean_text(value: str) -> str:
    return value.replace(NUL, REPLACEMENT)


def without_nul(value: Any) -> Any:
    """A copy of a JSON value with NUL replaced in every string, keys included; values
    without a string are returned as they are."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {
            (clean_text(k) if isinstance(k, str) else k): without_nul(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value
