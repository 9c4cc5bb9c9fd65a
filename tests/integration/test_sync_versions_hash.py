"""Per-package versions hashes (syncd/sync/versions_hash.py): a refresh stages the versions and
targets of changed packages only, and ends with exactly the rows a full import of the same
snapshot writes, whatever changed; both backends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from structlog.testing import capture_logs

from syncd.db.tables import Package
from syncd.domain import PackageRecord
from syncd.errors import TransientError
from syncd.sync import sqlite_path, staging, sync_catalog
from syncd.sync.plan_changes import Changes
from syncd.sync.shrink import ShrinkRefusedError
from tests.integration.test_sync import _contents, counts, make_catalog, rows_by_key
from tests.support.records import package, small_packages, snapshot, target, version


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Rows sent to each staging table by the syncs of the test."""
    sent: Counter[str] = Counter()
    original = staging._Loader.add

    def add(self: Any, table: str, row: tuple[Any, ...]) -> None:
        sent[table] += 1
        original(self, table, row)

    monkeypatch.setattr(staging._Loader, "add", add)
    yield sent


def base() -> list[PackageRecord]:
    return [
        *small_packages(),
        package(
            "cmake",
            version("3.28", target("x86_64/zen2"), target("x86_64/zen3")),
            version("3.27", target("x86_64/zen2")),
            version("3.26", target("x86_64/zen2")),
        ),
        package("zlib", version("1.3", target("x86_64/zen2")), description="Compression"),
    ]


def _edit(name: str, change: Callable[[PackageRecord], PackageRecord | None]) -> list[Any]:
    out = []
    for found in base():
        if found.name == name:
            changed = change(found)
            if changed is not None:
                out.append(changed)
        else:
            out.append(found)
    return out


# Each a snapshot after base(): (what changed, the packages whose versions must be staged).
CHANGES: dict[str, tuple[Callable[[], list[Any]], set[str]]] = {
    "version added on top": (
        lambda: _edit("cmake", lambda p: package("cmake", version("3.29"), *p.versions)),
        {"cmake"},
    ),
    "version removed": (
        lambda: _edit("cmake", lambda p: package("cmake", *p.versions[:2])),
        {"cmake"},
    ),
    "versions reordered": (
        lambda: _edit("cmake", lambda p: package("cmake", *reversed(p.versions))),
        {"cmake"},
    ),
    "target removed": (
        lambda: _edit(
            "cmake",
            lambda p: package("cmake", version("3.28", target("x86_64/zen2")), *p.versions[1:]),
        ),
        {"cmake"},
    ),
    "target moved to another version": (
        lambda: _edit(
            "cmake",
            lambda p: package(
                "cmake",
                version("3.28", target("x86_64/zen2")),
                version("3.27", target("x86_64/zen2"), target("x86_64/zen3")),
                p.versions[2],
            ),
        ),
        {"cmake"},
    ),
    "target changed": (
        lambda: _edit(
            "zlib",
            lambda p: package(
                "zlib", version("1.3", target("x86_64/zen2", location="/new")), description="C"
            ),
        ),
        {"zlib"},
    ),
    "package removed": (lambda: _edit("cmake", lambda p: None), set()),
    "package added": (lambda: [*base(), package("bzip2", version("1.0", target("t")))], {"bzip2"}),
    "package's own row changed": (
        lambda: _edit("zlib", lambda p: package("zlib", *p.versions, description="Zlib")),
        set(),
    ),
    "a parent appears for an unchanged extension": (
        lambda: [
            *_edit(
                "numpy",
                lambda p: package(
                    "numpy",
                    *p.versions,
                    is_extension=True,
                    parent_names=["python", "gcc", "no-such-parent"],
                ),
            ),
            package("no-such-parent", version("1")),
        ],
        {"no-such-parent"},
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_refresh_stages_changed_packages_only_and_writes_what_an_import_writes(
    engine: Engine, staged: Counter[str], change: str
) -> None:
    make_packages, restaged = CHANGES[change]
    cid = make_catalog(engine)
    sync_catalog(engine, cid, snapshot(base()))
    before = rows_by_key(engine, cid)
    staged.clear()

    stats = sync_catalog(engine, cid, snapshot(make_packages()))

    expected = snapshot(make_packages())
    staged_versions = sum(len(p.versions) for p in expected.packages if p.name in restaged)
    assert staged["stage_version"] == staged_versions
    assert staged["stage_package"] == len(make_packages())  # packages' own rows: always
    fresh = make_catalog(engine, version="fresh")
    sync_catalog(engine, fresh, snapshot(make_packages()))
    assert _contents(engine, cid) == _contents(engine, fresh)  # versions_hash included
    assert stats.rows_written > 0
    # The rows of packages left alone kept their identity and stamps.
    after = rows_by_key(engine, cid)
    untouched = {"gcc", "python"}
    kept = {k: v for k, v in before.items() if k[0] != "link" and k[1] in untouched}
    assert {k: after[k] for k in kept} == kept

    # The same snapshot again: nothing staged below the packages, nothing written.
    staged.clear()
    again = sync_catalog(engine, cid, snapshot(make_packages()))
    assert again.rows_written == 0
    assert (staged["stage_version"], staged["stage_target"]) == (0, 0)
    assert _contents(engine, cid) == _contents(engine, fresh)


def test_stats_and_changes_count_skipped_rows_as_unchanged(
    engine: Engine, staged: Counter[str]
) -> None:
    cid = make_catalog(engine)
    sync_catalog(engine, cid, snapshot(base()))
    recorded: list[Changes] = []
    new = CHANGES["target removed"][0]

    stats = sync_catalog(
        engine, cid, snapshot(new()), on_written=lambda conn, s, c: recorded.append(c)
    )

    assert counts(stats) == {
        "packages": (0, 0, 0, 5),
        "versions": (0, 0, 0, 9),
        "targets": (0, 0, 1, 11),
        "parent_links": (0, 0, 0, 2),
    }
    [changes] = recorded
    assert [c.as_dict() for c in changes.items] == [
        {
            "change": "target_removed",
            "package_name": "cmake",
            "version": "3.28",
            "module_version": "",
            "targets": 1,
        }
    ]


def test_the_shrink_guard_counts_versions_of_skipped_packages_as_kept(engine: Engine) -> None:
    many = [
        package("big", *(version(f"1.{i}") for i in range(10))),
        *(package(f"p{i}", version("1")) for i in range(9)),
    ]
    cid = make_catalog(engine)
    sync_catalog(engine, cid, snapshot(many))
    cut = [package("big", *(version(f"1.{i}") for i in range(2))), *many[1:]]

    with pytest.raises(ShrinkRefusedError, match="8 of 19 versions"):
        sync_catalog(engine, cid, snapshot(cut), max_shrink_fraction=0.3)
    stats = sync_catalog(engine, cid, snapshot(cut), max_shrink_fraction=0.5)
    assert counts(stats)["versions"] == (0, 0, 8, 11)


def test_a_keep_missing_sync_stages_everything(engine: Engine, staged: Counter[str]) -> None:
    cid = make_catalog(engine)
    sync_catalog(engine, cid, snapshot(base()))
    staged.clear()
    stats = sync_catalog(engine, cid, snapshot(base()[:3]), keep_missing=True)
    assert stats.rows_written == 0
    assert staged["stage_version"] == 5  # base()'s first three packages' versions


def test_a_package_without_a_stored_hash_is_staged_and_gets_one(
    engine: Engine, staged: Counter[str]
) -> None:
    cid = make_catalog(engine)
    sync_catalog(engine, cid, snapshot(base()))
    with engine.begin() as conn:  # as after migration 0024
        conn.execute(update(Package).where(Package.name == "cmake").values(versions_hash=None))
    staged.clear()

    with capture_logs() as logs:
        assert sync_catalog(engine, cid, snapshot(base())).rows_written == 0
    assert staged["stage_version"] == 3
    [finished] = [e for e in logs if e["event"] == "sync_finished"]
    assert finished["unchanged_by_hash"] == 4  # all but cmake
    with engine.connect() as conn:
        hashes = {row.name: row.versions_hash for row in conn.execute(
            select(Package.name, Package.versions_hash))}  # fmt: skip
    assert all(len(value or "") == 32 for value in hashes.values()), hashes


def test_sqlite_retries_when_a_skipped_package_changed_while_staging(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite reads the stored hashes before its write lock (sqlite_path.py): a write that
    comes in between makes the sync fail as transient and write nothing."""
    from syncd.db.engine import make_engine

    engine = make_engine(sqlite_url)
    cid = make_catalog(engine)
    sync_catalog(engine, cid, snapshot(base()))
    original = sqlite_path.stored_hashes

    def read_then_written(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        with engine.begin() as conn:  # a hand write's forget, on another connection
            conn.execute(update(Package).where(Package.name == "zlib").values(versions_hash=None))
        return found

    monkeypatch.setattr(sqlite_path, "stored_hashes", read_then_written)
    before = _contents(engine, cid)
    changed = CHANGES["version removed"][0]
    with pytest.raises(TransientError, match="changed by another write"):
        sync_catalog(engine, cid, snapshot(changed()))
    after = _contents(engine, cid)  # all as before, but for the other write's
    assert {k: v for k, v in after.items() if k != ("package", "zlib")} == {
        k: v for k, v in before.items() if k != ("package", "zlib")
    }
    monkeypatch.undo()
    assert sync_catalog(engine, cid, snapshot(changed())).versions.deleted == 1
    engine.dispose()


def test_a_package_with_altered_values_is_staged_and_named_at_every_sync(
    engine: Engine, staged: Counter[str]
) -> None:
    """NUL in a JSON value, or a string longer than the field limit: the stored rows are
    altered and update_errors says so at every sync, so the package is never skipped."""
    odd = [
        *base(),
        package("nul", version("1", target("t", metadata={"note": "a\x00b"}))),
        package("long", version("1", metadata={"text": "x" * 1000})),
    ]
    cid = make_catalog(engine)
    first = sync_catalog(engine, cid, snapshot(odd), max_field_chars=500)
    staged.clear()
    again = sync_catalog(engine, cid, snapshot(odd), max_field_chars=500)
    assert again.rows_written == 0
    assert staged["stage_version"] == 2  # the two odd packages' versions
    assert (first.sanitised, first.cut) == (again.sanitised, again.cut) == (1, 1)
    assert again.warnings == first.warnings
