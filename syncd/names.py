"""Catalog names as one rule for every entry point: API, CLI and queue messages.

Names that look alike must not make different catalogs: `EESSI`, `"EESSI "`, fullwidth
`EESSI` (U+FF25 ...), `EESSI\\u200b` and `eessi` are one name. So a name is trimmed as DRF's
CharField trims it (Python's str.strip), normalised with NFKC (fullwidth letters, ligatures
and compatibility spaces become their plain forms), and refused when it holds a formatting
character (Unicode category Cf: zero-width spaces and joiners, bidirectional overrides and
isolates, the BOM, soft hyphens), which renders as nothing or reorders what is around it. Two
names are the same catalog name when their `name_key`s (the normalised name, case-folded)
are equal; the database enforces the same with a unique index on lower(name) (migration 0009).

Letters that merely look like Latin ones (a Cyrillic U+0415 for the second E of `EESSI`) are
not caught: they are letters of their own script, and a name written wholly in that script is
a fair name.
"""

from __future__ import annotations

import unicodedata

FORMATTING_CATEGORY = "Cf"


def formatting_characters(value: str) -> list[str]:
    """The invisible or bidirectional formatting characters in `value`, as U+XXXX."""
    return [
        f"U+{ord(char):04X}" for char in value if unicodedata.category(char) == FORMATTING_CATEGORY
    ]


def formatting_problem(value: str) -> str | None:
    """Why `value` cannot be a catalog name because of its formatting characters; None if
    it has none. Worded for an API field error and a dead-letter reason alike."""
    found = formatting_characters(value)
    if not found:
        return None
    shown = ", ".join(dict.fromkeys(found))  # each once, in order
    return f"Invisible or bidirectional formatting characters are not allowed (found {shown})."


def normalize_name(value: str) -> str:
    """`value` trimmed and NFKC-normalised; ValueError (the reason as its message) when it
    holds formatting characters. A blank result is returned as "" for the caller to refuse
    with its own wording (DRF: "This field may not be blank.")."""
    text = unicodedata.normalize("NFKC", value.strip()).strip()
    problem = formatting_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def name_key(value: str) -> str:
    """What two catalog names are compared by: normalised (formatting characters kept, so a
    stored name from before this rule still compares) and case-folded."""
    text = unicodedata.normalize("NFKC", value.strip()).strip()
    return text.casefold()


def same_name(left: str, right: str) -> bool:
    return name_key(left) == name_key(right)
