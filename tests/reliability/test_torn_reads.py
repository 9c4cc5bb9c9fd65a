"""API reads while syncs commit: every response is one snapshot of the catalog.

A thread syncs one catalog back and forth between two snapshots of different sizes through
syncd.sync.sync_catalog (the only writer of catalog contents) while a real `syncd api`
process answers package and version lists. A list's X-Result-Count, its rows and the
versions embedded in each package must all come from one of the two snapshots.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.db.engine import make_engine, make_session_factory
from syncd.db.tables import Catalog
from syncd.domain import CatalogSnapshot, VersionRecord
from syncd.sync import sync_catalog
from tests.reliability.harness import ApiServer, syncd_env
from tests.reliability.results import CaseRecord
from tests.support.records import package, snapshot, target, version

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow, pytest.mark.timeout(300)]

PACKAGES = "/api/marketplace-software-packages/"
VERSIONS = "/api/marketplace-software-versions/"
# Snapshot name -> (modules, the versions of every package, newest first). Each module
# "mod-i" has an extension "ext-i", whose list entry embeds its parent with its versions.
# Versions newest first, as an adapter hands them over; the API nests them oldest first.
SNAPSHOTS = {"small": (15, ["a2", "a1"]), "large": (30, ["b3", "b2", "b1"])}
READS = 300  # responses checked per backend
MIN_SYNCS = 20  # and at least this many commits while reading


Check = Callable[[Any, int], str | None]  # (body, X-Result-Count) -> its snapshot or None


def _snapshot(name: str) -> CatalogSnapshot:
    modules, versions = SNAPSHOTS[name]

    def versions_of() -> list[VersionRecord]:
        return [version(v, target("x86_64", target_subtype="generic")) for v in versions]

    records = []
    for i in range(modules):
        records.append(package(f"mod-{i:03d}", *versions_of()))
        records.append(
            package(
                f"ext-{i:03d}", *versions_of(), is_extension=True, parent_names=[f"mod-{i:03d}"]
            )
        )
    return snapshot(records)


def _package_list_from(body: list[dict[str, Any]], count: int) -> str | None:
    """The snapshot a package list is entirely from: count, rows, version counts, and the
    versions of the parents it embeds."""
    for name, (modules, versions) in SNAPSHOTS.items():
        if (
            count == 2 * modules == len(body)
            and all(p["version_count"] == len(versions) for p in body)
            and all(
                [parent["versions"] for parent in p["parent_softwares"]]
                == ([versions[::-1]] if p["is_extension"] else [])
                for p in body
            )
        ):
            return name
    return None


def _package_from(body: dict[str, Any], _count: int) -> str | None:
    """The snapshot one package (with its versions and their targets) is entirely from."""
    for name, (_, versions) in SNAPSHOTS.items():
        if (
            body["version_count"] == len(versions)
            and [v["version"] for v in body["versions"]] == versions[::-1]
            and all(len(v["targets"]) == 1 for v in body["versions"])
            and [e["versions"] for e in body["extensions"]] == [versions[::-1]]
        ):
            return name
    return None


def _version_list_from(body: list[dict[str, Any]], count: int) -> str | None:
    for name, (modules, versions) in SNAPSHOTS.items():
        if count == 2 * modules * len(versions) == len(body) and {
            v["version"] for v in body
        } == set(versions):
            return name
    return None


class Syncer(threading.Thread):
    """Syncs the catalog to the large, then the small snapshot, and so on, until stopped."""

    def __init__(self, db_url: str, catalog_id: int) -> None:
        super().__init__(daemon=True)
        self.db_url = db_url
        self.catalog_id = catalog_id
        self.syncs = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        engine = make_engine(self.db_url)
        try:
            while not self.done.is_set():
                name = "large" if self.syncs % 2 == 0 else "small"
                sync_catalog(engine, self.catalog_id, _snapshot(name))
                self.syncs += 1
        except BaseException as exc:  # the test reports it
            self.error = exc
        finally:
            engine.dispose()


def _first_module(api: httpx.Client, catalog_uuid: str) -> str:
    """mod-000's uuid: the sync keeps a package's row (and uuid) while its name stays."""
    listed = api.get(
        PACKAGES, params={"catalog_uuid": catalog_uuid, "name_exact": "mod-000"}
    ).json()
    return str(listed[0]["uuid"])


def _new_catalog(db_url: str) -> tuple[int, str]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            row = Catalog(name="Torn", version="1", catalog_type="source_package")
            session.add(row)
            session.commit()
            catalog_id, catalog_uuid = row.id, row.uuid.hex
        sync_catalog(engine, catalog_id, _snapshot("small"))
    finally:
        engine.dispose()
    return catalog_id, catalog_uuid


@pytest.fixture
def api(db_url: str, amqp_url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    # No response cache: every read runs its queries.
    env = syncd_env(database_url=db_url, broker_url=amqp_url, api_cache_seconds=0)
    server = ApiServer(env, tmp_path / "api.log").start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def test_every_response_is_one_snapshot_while_syncs_commit(
    db_url: str, api: httpx.Client, reliability: Callable[[str], CaseRecord]
) -> None:
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    record = reliability("torn_reads" if backend == "postgresql" else "torn_reads_sqlite")
    catalog_id, catalog_uuid = _new_catalog(db_url)
    module = _first_module(api, catalog_uuid)
    # Filtered by catalog, a list counts with a statement of its own; unfiltered, it reads
    # the catalog's stored count with its rows. Embedded objects take further statements.
    reads: list[tuple[str, str, dict[str, Any], Check]] = [
        ("packages of the catalog", PACKAGES, {"catalog_uuid": catalog_uuid}, _package_list_from),
        ("all packages", PACKAGES, {}, _package_list_from),
        ("versions of the catalog", VERSIONS, {"catalog_uuid": catalog_uuid}, _version_list_from),
        ("one package", f"{PACKAGES}{module}/", {}, _package_from),
    ]
    small, large = SNAPSHOTS["small"], SNAPSHOTS["large"]
    record.try_(
        f"{backend}: a thread syncs one catalog back and forth between {2 * small[0]} packages "
        f"x {len(small[1])} versions and {2 * large[0]} packages x {len(large[1])} versions (half "
        "of them extensions of the other half) through syncd.sync.sync_catalog, while a "
        "`syncd api` process answers package lists (filtered by catalog and not, parents "
        "embedded with their versions), a version list (page_size 300: all rows) and one "
        "package with its versions, targets and extensions, in turn"
    )
    syncer = Syncer(db_url, catalog_id)
    syncer.start()
    seen: dict[str, int] = {"small": 0, "large": 0}
    checked = {label: 0 for label, *_ in reads}
    torn: dict[str, list[str]] = {label: [] for label, *_ in reads}
    done = 0
    try:
        while done < READS or syncer.syncs < MIN_SYNCS:
            label, path, params, check = reads[done % len(reads)]
            response = api.get(path, params={**params, "page_size": 300})  # all rows
            assert response.status_code == 200, response.text
            count = int(response.headers.get("X-Result-Count", 0))
            found = check(response.json(), count)
            done += 1
            checked[label] += 1
            if found is None:
                torn[label].append(f"X-Result-Count {count}: {response.text[:200]}")
            else:
                seen[found] += 1
            assert syncer.error is None and syncer.is_alive(), syncer.error
    finally:
        syncer.done.set()
        syncer.join(timeout=60)
    assert syncer.error is None, syncer.error
    inconsistent = sum(len(found) for found in torn.values())
    record.figure("responses checked", done)
    record.figure("syncs committed while reading", syncer.syncs)
    record.figure("responses from the small / large snapshot", f"{seen['small']} / {seen['large']}")
    record.figure("inconsistent responses", inconsistent)
    record.figure(
        "reads",
        [
            {"read": label, "responses": checked[label], "inconsistent": len(torn[label])}
            for label in checked
        ],
    )
    record.summarize(
        f"{backend}: {done} reads during {syncer.syncs} syncs; "
        f"{inconsistent} inconsistent responses"
    )
    assert inconsistent == 0, {label: found[:2] for label, found in torn.items() if found}
    assert seen["small"] and seen["large"], seen  # the reads did see both snapshots
    record.hold(
        "every response is one snapshot: X-Result-Count equals its row count, and its rows, "
        "their counts and every embedded parent, version, target and extension agree"
    )
