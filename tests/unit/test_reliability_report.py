"""docs/reliability.md is generated, but keeps its hand-written sections (one-off
measurements such as "Hostile inputs") when it is written again."""

from __future__ import annotations

from tests.reliability.report import kept_sections, render

PAGE = """# Reliability

## Summary

| Case | Result |
|---|---|

## Hostile inputs

| case | limit | before | after |
|---|---|---|---|
| deep | 32 | GBs | refused |

## Some case

Result: held.
"""


def test_the_hostile_inputs_section_survives_a_new_render() -> None:
    kept = kept_sections(PAGE)
    assert kept.startswith("## Hostile inputs\n")
    assert "| deep | 32 | GBs | refused |" in kept
    assert "Some case" not in kept
    page = render({"cases": {}}, "results.json", kept)
    assert page.index("## Summary") < page.index("## Hostile inputs")
    assert kept_sections(page) == kept


def test_a_page_without_it_keeps_nothing() -> None:
    assert kept_sections("# Reliability\n\n## Summary\n") == ""
