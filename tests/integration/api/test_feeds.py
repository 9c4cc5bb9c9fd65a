"""The Atom feeds through HTTP, read with a real feed parser (feedparser), on SQLite and
PostgreSQL: /feeds/changes.atom and /feeds/catalogs/{uuid}.atom.

One entry per run that changed something, newest first, with a stable id (urn:uuid:<run>),
`updated` = when the run finished, a title that counts and a content that names what
changed; everything upstream wrote is escaped (a package named like markup stays text).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import timedelta
from typing import Any

import feedparser
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from syncd.api.feed_queries import NAMES_PER_KIND
from syncd.db.tables import Catalog
from tests.integration.api.conftest import Sample
from tests.support.history_rows import T0, History, add_run, seed_history

ALL = "/feeds/changes.atom"
BASE = "http://testserver"
ATOM = "{http://www.w3.org/2005/Atom}"
# The runs that changed something, newest first (the others are not entries).
ENTRIES = ["spack_update", "eessi_update", "eessi_import", "deleted_import"]


@pytest.fixture
def history(session_factory: sessionmaker[Session], sample: Sample) -> History:
    return seed_history(session_factory, sample.eessi, sample.spack)


def _catalog_feed(catalog: uuid.UUID | str) -> str:
    return f"/feeds/catalogs/{catalog.hex if isinstance(catalog, uuid.UUID) else catalog}.atom"


def _parse(response: Any) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    return feed


def _ids(history: History, *names: str) -> list[str]:
    return [history.runs[name].urn for name in names]


def _stamp(delta: timedelta) -> str:
    return (T0 + delta).isoformat().replace("+00:00", "Z")


def test_changes_feed(client: TestClient, history: History) -> None:
    first = client.get(ALL)
    feed = _parse(first)
    assert [entry.id for entry in feed.entries] == _ids(history, *ENTRIES)
    # Ids, times and contents are the same on the next fetch: a reader sees nothing new.
    second = client.get(ALL)
    assert [entry.id for entry in _parse(second).entries] == _ids(history, *ENTRIES)
    assert second.content == first.content
    spack, eessi, imported, gone = feed.entries
    assert spack.title == "Spack 2026.07.01: 1 version added, 1 removed"
    assert eessi.title == (
        "EESSI 2023.06: 3 packages added, 1 removed, 1 version updated, targets added to 1 version"
    )
    assert imported.title == "EESSI 2023.06: imported 3 packages, 4 versions, 5 targets"
    assert gone.title == "Gone 1: 1 package added"
    assert spack.updated == _stamp(timedelta(days=2.5, minutes=2))  # the run's finish
    assert spack.published == _stamp(timedelta(days=2.5))
    assert feed.feed.updated == spack.updated  # the newest entry's
    run = history.runs["spack_update"]
    assert [(link.rel, link.type, link.href) for link in spack.links] == [
        (
            "alternate",
            "application/json",
            f"{BASE}/api/marketplace-software-catalog-runs/{run.hex}/",
        ),
        (
            "related",
            "application/json",
            f"{BASE}/api/marketplace-software-changes/?run_uuid={run.hex}",
        ),
    ]
    self_links = [link.href for link in feed.feed.links if link.rel == "self"]
    assert self_links == [f"{BASE}{ALL}"]
    assert feed.feed.id == f"{BASE}{ALL}"


def test_entry_content_names_what_changed(client: TestClient, history: History) -> None:
    feed = _parse(client.get(ALL))
    eessi = feed.entries[1].content[0]
    assert eessi.type == "text/html"
    text = eessi.value
    for expected in (
        "Packages added (3)",
        "GROMACS",
        "LAMMPS",
        "Packages removed (1)",
        "OldTool",
        "Versions updated (1)",
        "python 3.11.3-GCCcore-12.3.0 (metadata)",
        "Targets added (1)",
        "2 targets (x86_64/amd/zen3, x86_64/amd/zen4)",
        "All 6 changes of this run",
    ):
        assert expected in text, expected
    spack = feed.entries[0].content[0].value
    assert "gromacs 2024.2" in spack and "gromacs 2023.3" in spack


def test_markup_in_names_stays_text(client: TestClient, history: History) -> None:
    body = client.get(ALL).content
    # The entry's HTML, as a reader gets it from the XML: the name escaped, not a tag.
    contents = [el.text or "" for el in ET.fromstring(body).iter(f"{ATOM}content")]
    eessi = contents[1]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in eessi
    assert "<script>" not in eessi
    parsed = _parse(client.get(ALL)).entries[1].content[0].value
    assert "<script>" not in parsed and "alert(" in parsed


def test_catalog_feed(client: TestClient, history: History, sample: Sample) -> None:
    eessi = _parse(client.get(_catalog_feed(sample.eessi)))
    assert [e.id for e in eessi.entries] == _ids(history, "eessi_update", "eessi_import")
    assert eessi.feed.title == "EESSI 2023.06: what its syncs changed"
    assert eessi.feed.id == f"{BASE}{_catalog_feed(sample.eessi)}"
    spack = _parse(client.get(_catalog_feed(str(sample.spack))))  # hyphenated works too
    assert [e.id for e in spack.entries] == _ids(history, "spack_update")
    # The history outlives its catalog.
    gone = _parse(client.get(_catalog_feed(history.deleted_catalog)))
    assert gone.feed.title == "Gone 1: what its syncs changed"
    assert [e.id for e in gone.entries] == _ids(history, "deleted_import")


def test_unknown_and_malformed_catalogs(client: TestClient, history: History) -> None:
    unknown = client.get(_catalog_feed(uuid.uuid4()))
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Not found."}
    malformed = client.get(_catalog_feed("not-a-uuid"))
    assert malformed.status_code == 400
    assert malformed.json() == {"uuid": ["Enter a valid UUID."]}


def test_a_catalog_without_changes_has_an_empty_feed(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        quiet = Catalog(name="Quiet", version="1", catalog_type="source_package", metadata_={})
        session.add(quiet)
        session.commit()
        quiet_uuid = quiet.uuid
    add_run(
        session_factory,
        catalog_uuid=quiet_uuid,
        catalog_name="Quiet",
        catalog_version="1",
        started=T0,
        outcome="unchanged",
    )
    for url in (_catalog_feed(quiet_uuid), ALL):
        feed = _parse(client.get(url))
        assert feed.entries == []
        assert feed.feed.updated == "1970-01-01T00:00:00Z"


def test_limit(client: TestClient, history: History) -> None:
    one = _parse(client.get(ALL, params={"limit": 1}))
    assert [e.id for e in one.entries] == _ids(history, "spack_update")
    assert [link.href for link in one.feed.links if link.rel == "self"] == [f"{BASE}{ALL}?limit=1"]
    assert one.feed.id == f"{BASE}{ALL}"  # the same feed, whatever the limit
    # As DRF's LimitOffsetPagination: not a positive integer is the default; large is capped.
    for lenient in ("abc", "0", "-3", "", "100000"):
        feed = _parse(client.get(ALL, params={"limit": lenient}))
        assert len(feed.entries) == len(ENTRIES), lenient


def test_at_most_fifty_entries_by_default(
    client: TestClient, session_factory: sessionmaker[Session], sample: Sample
) -> None:
    runs = [
        add_run(
            session_factory,
            catalog_uuid=sample.spack,
            catalog_name="Spack",
            catalog_version="2026.07.01",
            started=T0 + timedelta(hours=hour),
            changes=[("version_added", "zlib", f"1.{hour}", "", {})],
        )
        for hour in range(52)
    ]
    feed = _parse(client.get(_catalog_feed(sample.spack)))
    assert [e.id for e in feed.entries] == [run.urn for run in reversed(runs)][:50]
    assert len(_parse(client.get(ALL, params={"limit": 60})).entries) == 52


def test_a_large_run_names_the_first_and_counts_the_rest(
    client: TestClient, session_factory: sessionmaker[Session], sample: Sample
) -> None:
    added = [("version_added", "llvm", f"{n}.0", "", {}) for n in range(NAMES_PER_KIND + 35)]
    add_run(
        session_factory,
        catalog_uuid=sample.spack,
        catalog_name="Spack",
        catalog_version="2026.07.01",
        started=T0,
        changes=[*added, ("package_updated", "llvm", "", "", {"fields": ["homepage"]})],
    )
    entry = _parse(client.get(_catalog_feed(sample.spack))).entries[0]
    count = NAMES_PER_KIND + 35
    assert entry.title == f"Spack 2026.07.01: 1 package updated, {count} versions added"
    content = entry.content[0].value
    assert f"Versions added ({count})" in content
    assert "llvm 0.0" in content and f"llvm {NAMES_PER_KIND - 1}.0" in content
    assert f"llvm {NAMES_PER_KIND}.0" not in content
    assert "and 35 more" in content
    assert "llvm (homepage)" in content


def test_characters_xml_cannot_carry_do_not_break_the_feed(
    client: TestClient, session_factory: sessionmaker[Session], sample: Sample
) -> None:
    add_run(
        session_factory,
        catalog_uuid=sample.spack,
        catalog_name="Spack\x0b",
        catalog_version="1",
        started=T0,
        changes=[("package_added", "bad\x01name\x1f", "", "", {})],
    )
    entry = _parse(client.get(ALL)).entries[0]
    assert entry.title.startswith("Spack\ufffd 1:")
    assert "bad\ufffdname\ufffd" in entry.content[0].value


def test_head_and_anonymous_read_as_configured(
    client: TestClient, history: History, app: FastAPI, user: dict[str, str], sample: Sample
) -> None:
    head = client.head(ALL)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("application/atom+xml")
    app.state.ctx.settings = replace(app.state.ctx.settings, anonymous_read=False)
    for url in (ALL, _catalog_feed(sample.eessi)):
        refused = client.get(url)
        assert refused.status_code == 401
        assert refused.json() == {"detail": "Authentication credentials were not provided."}
        _parse(client.get(url, headers=user))


def test_a_title_names_each_noun_once(
    client: TestClient, session_factory: sessionmaker[Session], sample: Sample
) -> None:
    def target(kind: str, version: str) -> Any:
        return (kind, "hdf5", version, "", {"targets": 1, "names": ["default"]})

    add_run(
        session_factory,
        catalog_uuid=sample.spack,
        catalog_name="Spack",
        catalog_version="2026.07.01",
        started=T0,
        changes=[
            ("package_removed", "old", "", "", {}),
            ("version_added", "hdf5", "1.14", "", {}),
            ("version_removed", "hdf5", "1.10", "", {}),
            ("version_removed", "hdf5", "1.8", "", {}),
            target("target_added", "1.14"),
            target("target_removed", "1.10"),
            target("target_removed", "1.8"),
        ],
    )
    add_run(
        session_factory,
        catalog_uuid=sample.spack,
        catalog_name="Spack",
        catalog_version="2026.07.01",
        started=T0 + timedelta(days=1),
        changes=[target("target_removed", "1.14")],
    )
    titles = [e.title for e in _parse(client.get(_catalog_feed(sample.spack))).entries]
    assert titles == [
        "Spack 2026.07.01: targets removed from 1 version",
        "Spack 2026.07.01: 1 package removed, 1 version added, 2 removed, "
        "targets added to 1 version, removed from 2",
    ]
