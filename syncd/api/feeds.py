"""Atom 1.0 documents of the change feeds: one entry per run that changed something, titled
like "EESSI 2025.06: 3 packages added, 1 removed, 12 versions updated", its content the
names of what was added, removed and updated.

Built with xml.etree, which escapes text and attributes; the content is HTML (type="html")
whose every upstream value is escaped first, and characters XML 1.0 cannot carry at all
(C0 controls) become U+FFFD, so no upstream name can break a reader's parse. An entry's id
is its run's uuid (`urn:uuid:`), stable however often the feed is fetched.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from syncd.api.feed_queries import NamedChange, RunSummary
from syncd.api.representation import iso_datetime

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_TYPE = "application/atom+xml"
# A feed with no entries is as old as can be: readers compare `updated`, and "now" would
# tell them, on every fetch, that something changed.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

# (kind, section heading): the order content lists them in.
SECTIONS = (
    ("package_added", "Packages added"),
    ("package_removed", "Packages removed"),
    ("package_updated", "Packages updated"),
    ("version_added", "Versions added"),
    ("version_removed", "Versions removed"),
    ("version_updated", "Versions updated"),
    ("target_added", "Targets added"),
    ("target_removed", "Targets removed"),
)


@dataclass(frozen=True)
class FeedHead:
    """The feed's own fields: `feed_id` its permanent id, `self_url` the URL it was fetched
    at, `alternate_url` the same history as JSON."""

    feed_id: str
    title: str
    self_url: str
    alternate_url: str


def _xml_text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _kind_phrase(counts: dict[str, int], noun: str, prefix: str) -> str:
    """ "3 packages added, 1 removed, 2 updated": the noun once, on the first count."""
    parts: list[str] = []
    for verb in ("added", "removed", "updated"):
        count = counts.get(f"{prefix}_{verb}", 0)
        if count:
            parts.append(f"{_plural(count, noun) if not parts else f'{count:,}'} {verb}")
    return ", ".join(parts)


def summary_line(run: RunSummary) -> str:
    """What the run changed, in a few words."""
    imported = run.changes.get("catalog_imported")
    if imported:
        details = imported[0].details
        sizes = [
            _plural(int(details.get(key) or 0), key[:-1])
            for key in ("packages", "versions", "targets")
        ]
        return "imported " + ", ".join(sizes)
    parts = [
        _kind_phrase(run.counts, "package", "package"),
        _kind_phrase(run.counts, "version", "version"),
    ]
    added = run.counts.get("target_added", 0)
    removed = run.counts.get("target_removed", 0)
    if added:
        parts.append(f"targets added to {_plural(added, 'version')}")
    if removed:
        to = f"{removed:,}" if added else _plural(removed, "version")
        parts.append(f"{'' if added else 'targets '}removed from {to}")
    return ", ".join(part for part in parts if part) or _plural(run.change_count, "change")


def entry_title(run: RunSummary) -> str:
    return f"{run.catalog_name} {run.catalog_version}: {summary_line(run)}"


def _change_label(kind: str, change: NamedChange) -> str:
    label = change.package_name
    if kind.startswith(("version", "target")):
        label += f" {change.module_version or change.version}"
    fields = change.details.get("fields")
    if kind.endswith("_updated") and isinstance(fields, list) and fields:
        label += f" ({', '.join(str(name) for name in fields)})"
    if kind.startswith("target"):
        names = change.details.get("names")
        shown = ", ".join(str(n) for n in names) if isinstance(names, list) else ""
        targets = int(change.details.get("targets") or 0)
        label += f": {_plural(targets, 'target')}" + (f" ({shown})" if shown else "")
    return label


def entry_content(run: RunSummary, run_url: str, changes_url: str) -> str:
    """The entry's HTML: a section per kind with the names it carries, "and N more" for the
    rest, and links to the run and all its changes."""
    parts = [
        f"<p>{html.escape(entry_title(run))}.</p>",
        f'<p>Run <a href="{html.escape(run_url)}">{run.uuid.hex}</a> '
        f"({html.escape(run.trigger)}{', ' + html.escape(run.command) if run.command else ''})"
        f", finished {iso_datetime(run.finished)}.</p>",
    ]
    for kind, heading in SECTIONS:
        changes = run.changes.get(kind)
        if not changes:
            continue
        count = run.counts.get(kind, len(changes))
        items = "".join(f"<li>{html.escape(_change_label(kind, c))}</li>" for c in changes)
        parts.append(f"<h3>{heading} ({count:,})</h3><ul>{items}</ul>")
        if count > len(changes):
            parts.append(f"<p>and {count - len(changes):,} more</p>")
    parts.append(
        f'<p><a href="{html.escape(changes_url)}">All {_plural(run.change_count, "change")}'
        " of this run</a></p>"
    )
    return "".join(parts)


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _xml_text(v) for k, v in attributes.items()})
    if text is not None:
        element.text = _xml_text(text)
    return element


def atom_document(
    head: FeedHead, runs: Sequence[RunSummary], run_urls: Sequence[tuple[str, str]]
) -> bytes:
    """The feed; `run_urls` holds each run's (API URL, changes URL), in `runs`' order."""
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    _add(feed, "id", head.feed_id)
    _add(feed, "title", head.title)
    newest = max((run.finished for run in runs), default=EPOCH, key=_aware)
    _add(feed, "updated", iso_datetime(newest) or "")
    _add(feed, "link", rel="self", type=MEDIA_TYPE, href=head.self_url)
    _add(feed, "link", rel="alternate", type="application/json", href=head.alternate_url)
    author = _add(feed, "author")
    _add(author, "name", "syncd")
    _add(feed, "generator", "syncd")
    for run, (run_url, changes_url) in zip(runs, run_urls, strict=True):
        entry = _add(feed, "entry")
        _add(entry, "id", run.uuid.urn)
        _add(entry, "title", entry_title(run), type="text")
        _add(entry, "updated", iso_datetime(run.finished) or "")
        _add(entry, "published", iso_datetime(run.started) or "")
        _add(entry, "link", rel="alternate", type="application/json", href=run_url)
        _add(entry, "link", rel="related", type="application/json", href=changes_url)
        _add(entry, "content", entry_content(run, run_url, changes_url), type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
