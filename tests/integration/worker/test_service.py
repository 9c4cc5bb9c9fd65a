"""syncd.service against a real database (SQLite and PostgreSQL) with a fake adapter."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, update

from syncd import metrics, service
from syncd.db.tables import Catalog
from syncd.errors import (
    LockBusyError,
    NoAdapterError,
    UnknownCatalogError,
    UpstreamError,
)
from tests.integration.worker.fakes import (
    FakeAdapter,
    catalog_row,
    contents,
    count_catalogs,
    expected_contents,
)


@pytest.fixture
def fake() -> FakeAdapter:
    return FakeAdapter()


def run_import(engine: Engine, fake: FakeAdapter, **kwargs: object) -> service.CommandResult:
    return service.import_catalog(engine, {"Fake": fake}, None, name="Fake", **kwargs)  # type: ignore[arg-type]


def test_import_creates_the_catalog_from_the_adapter(engine: Engine, fake: FakeAdapter) -> None:
    result = run_import(engine, fake)

    assert result.created and result.changed
    row = catalog_row(engine, uuid=__import__("uuid").UUID(result.catalog_uuid))
    assert (row.name, row.version, row.catalog_type) == ("Fake", "2.0", "binary_runtime")
    assert row.last_update_attempt is not None
    assert row.last_successful_update >= row.last_update_attempt
    assert row.update_errors == ""
    assert row.description == "fake catalog, generation 1"
    assert contents(engine, row.id) == expected_contents(1)


def test_import_of_a_named_version_and_case_insensitive_name(
    engine: Engine, fake: FakeAdapter
) -> None:
    result = service.import_catalog(engine, {"Fake": fake}, None, name="fake", version="1.0")
    assert (result.name, result.version) == ("Fake", "1.0")


def test_importing_again_refreshes_the_same_row(engine: Engine, fake: FakeAdapter) -> None:
    first = run_import(engine, fake)
    again = run_import(engine, fake)  # upstream unchanged: conditional fetch says so
    fake.generation = 2
    third = run_import(engine, fake)

    assert not again.created and not again.changed
    assert third.catalog_uuid == first.catalog_uuid and third.changed
    assert count_catalogs(engine) == 1
    assert contents(engine, first.catalog_id) == expected_contents(2)


def test_racing_imports_make_one_row(engine: Engine, fake: FakeAdapter) -> None:
    start = threading.Barrier(6)

    def one(_: int) -> service.CommandResult:
        start.wait(timeout=10)
        return run_import(engine, fake)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))

    assert count_catalogs(engine) == 1
    assert sum(r.created for r in results) == 1
    assert len({r.catalog_uuid for r in results}) == 1
    assert contents(engine, results[0].catalog_id) == expected_contents(1)


def test_failed_import_leaves_no_new_row_and_a_retry_completes_it(
    engine: Engine, fake: FakeAdapter
) -> None:
    def unavailable() -> UpstreamError:
        return UpstreamError(
            "Fetching https://upstream.example/fake.json failed: HTTP 503 from upstream",
            transient=True,
            url="https://upstream.example/fake.json",
            status=503,
        )

    # An import that would create the catalog downloads first (with or without a version):
    # its failure leaves no row behind, and the retry creates it.
    fake.failures = [unavailable()]
    with pytest.raises(UpstreamError):
        run_import(engine, fake, version="2.0", will_retry=True)
    assert count_catalogs(engine) == 0
    assert run_import(engine, fake, version="2.0").created

    # Of an existing catalog, the failed import is recorded on its row and the next completes it.
    fake.generation = 2
    fake.failures = [unavailable()]
    with pytest.raises(UpstreamError):
        run_import(engine, fake, version="2.0", will_retry=True)
    row = catalog_row(engine, name="Fake", version="2.0")
    assert row.update_errors == (
        "Fetching https://upstream.example/fake.json failed: HTTP 503 from upstream (will retry)"
    )
    assert row.last_update_attempt > row.last_successful_update

    result = run_import(engine, fake)
    row = catalog_row(engine, name="Fake", version="2.0")
    assert not result.created and result.changed
    assert row.update_errors == "" and row.last_successful_update > row.last_update_attempt
    assert contents(engine, row.id) == expected_contents(2)


def test_failed_update_keeps_the_previous_data(engine: Engine, fake: FakeAdapter) -> None:
    first = run_import(engine, fake)
    fake.generation = 2
    fake.failures = [UpstreamError("upstream.example: the JSON is cut short", transient=False)]
    with pytest.raises(UpstreamError):
        service.update_catalog(engine, {"Fake": fake}, None, catalog_uuid=first.catalog_uuid)

    row = catalog_row(engine, id=first.catalog_id)
    assert row.update_errors == "upstream.example: the JSON is cut short"  # permanent: no note
    assert row.last_update_attempt > row.last_successful_update
    assert contents(engine, first.catalog_id) == expected_contents(1)


def test_update_not_modified_writes_only_timestamps(engine: Engine, fake: FakeAdapter) -> None:
    first = run_import(engine, fake)
    before = catalog_row(engine, id=first.catalog_id)

    result = service.update_catalog(engine, {"Fake": fake}, None, catalog_uuid=first.catalog_uuid)

    after = catalog_row(engine, id=first.catalog_id)
    assert not result.changed and result.stats is None
    assert after.last_update_attempt > before.last_update_attempt
    assert after.last_successful_update >= after.last_update_attempt
    assert after.upstream_validators == before.upstream_validators
    assert after.package_count == before.package_count


def test_update_accepts_uuid_with_and_without_hyphens(engine: Engine, fake: FakeAdapter) -> None:
    first = run_import(engine, fake)
    import uuid

    hyphenated = str(uuid.UUID(first.catalog_uuid))
    result = service.update_catalog(engine, {"Fake": fake}, None, catalog_uuid=hyphenated)
    assert result.catalog_uuid == first.catalog_uuid


def test_unknown_catalog(engine: Engine, fake: FakeAdapter) -> None:
    with pytest.raises(UnknownCatalogError, match=r"No catalog with uuid 0+1"):
        service.update_catalog(engine, {"Fake": fake}, None, catalog_uuid="0" * 31 + "1")
    with pytest.raises(UnknownCatalogError, match="not a uuid"):
        service.update_catalog(engine, {"Fake": fake}, None, catalog_uuid="nope")


def test_update_without_adapter_writes_waldurs_message(engine: Engine, fake: FakeAdapter) -> None:
    first = run_import(engine, fake)
    with pytest.raises(NoAdapterError) as caught:
        service.update_catalog(engine, {}, None, catalog_uuid=first.catalog_uuid)

    message = "No loader configuration found for Fake (binary_runtime)."
    assert caught.value.message == message
    assert catalog_row(engine, id=first.catalog_id).update_errors == message


def test_import_with_unknown_adapter(engine: Engine) -> None:
    with pytest.raises(NoAdapterError, match="No loader configuration found for Nope"):
        service.import_catalog(engine, {}, None, name="Nope")
    assert count_catalogs(engine) == 0


def test_unexpected_error_is_described_and_permanent(engine: Engine, fake: FakeAdapter) -> None:
    first = run_import(engine, fake)
    fake.generation = 2
    fake.failures = [KeyError("packages")]
    with pytest.raises(KeyError):
        service.update_catalog(
            engine, {"Fake": fake}, None, catalog_uuid=first.catalog_uuid, will_retry=True
        )
    row = catalog_row(engine, id=first.catalog_id)
    assert row.update_errors == "Fetching the upstream data failed: KeyError: 'packages'"
    assert not service.is_transient(KeyError("x"))


def test_lock_busy_is_transient_and_noted(engine: Engine, fake: FakeAdapter) -> None:
    first = run_import(engine, fake)
    fake.failures = [LockBusyError("catalog 1 is being synced by another worker")]
    with pytest.raises(LockBusyError):
        service.update_catalog(
            engine, {"Fake": fake}, None, catalog_uuid=first.catalog_uuid, will_retry=True
        )
    row = catalog_row(engine, id=first.catalog_id)
    assert row.update_errors.endswith("(will retry)")


def test_attempt_clears_a_stale_error_until_it_has_an_outcome(
    engine: Engine, fake: FakeAdapter
) -> None:
    first = run_import(engine, fake)
    with engine.begin() as conn:
        conn.execute(
            update(Catalog).where(Catalog.id == first.catalog_id).values(update_errors="old")
        )
    seen: list[str] = []

    class Peeking(FakeAdapter):
        def fetch_snapshot(self, fetcher, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(catalog_row(engine, id=first.catalog_id).update_errors)
            return super().fetch_snapshot(fetcher, **kwargs)

    service.update_catalog(engine, {"Fake": Peeking()}, None, catalog_uuid=first.catalog_uuid)
    assert seen == [""]


def test_metrics_count_commands(engine: Engine, fake: FakeAdapter) -> None:
    def value(counter: object, **labels: str) -> float:
        return counter.labels(**labels)._value.get()  # type: ignore[attr-defined]

    before = value(metrics.COMMANDS_SUCCEEDED, actor="import_catalog", catalog="Fake/2.0")
    run_import(engine, fake)
    after = value(metrics.COMMANDS_SUCCEEDED, actor="import_catalog", catalog="Fake/2.0")
    assert after == before + 1


def test_eessi_stacks_live_side_by_side(engine: Engine) -> None:
    """The real adapters through the service: two EESSI stack versions are two catalogs, and
    an import without a version takes the latest upstream offers."""
    from adapters.base import load_adapters
    from adapters.fetch import Fetcher
    from tests.support.fake_upstream import FakeUpstream

    with FakeUpstream() as up:
        settings = up.settings()
        adapters = load_adapters(settings)
        with Fetcher(settings) as fetcher:
            latest = service.import_catalog(engine, adapters, fetcher, name="EESSI")
            older = service.import_catalog(
                engine, adapters, fetcher, name="EESSI", version="2023.06"
            )
            again = service.import_catalog(
                engine, adapters, fetcher, name="EESSI", version="2023.06"
            )

    assert latest.version == "2025.06" and older.version == "2023.06"
    assert latest.catalog_uuid != older.catalog_uuid
    assert again.catalog_uuid == older.catalog_uuid and not again.changed
    assert count_catalogs(engine) == 2
    for result in (latest, older):
        row = catalog_row(engine, id=result.catalog_id)
        assert row.package_count > 0 and row.update_errors == ""


def test_import_without_version_downloads_the_software_file_once(engine: Engine) -> None:
    """The latest version is read from the same download the import syncs (not from a
    discover download of its own), and an import of the unchanged latest writes nothing."""
    from adapters.base import load_adapters
    from adapters.fetch import Fetcher
    from tests.support.fake_upstream import FakeUpstream

    with FakeUpstream() as up:
        settings = up.settings()
        adapters = load_adapters(settings)
        with Fetcher(settings) as fetcher:
            first = service.import_catalog(engine, adapters, fetcher, name="EESSI")
            gets = [r for r in up.requests_for(up.EESSI_SOFTWARE) if r.method == "GET"]
            assert len(gets) == 1
            again = service.import_catalog(engine, adapters, fetcher, name="EESSI")
            gets = [r for r in up.requests_for(up.EESSI_SOFTWARE) if r.method == "GET"]

    assert first.version == "2025.06" and first.created and first.changed
    assert len(gets) == 2  # one more for the second import, none for discovering
    assert again.catalog_uuid == first.catalog_uuid and not again.changed
    assert catalog_row(engine, id=first.catalog_id).package_count > 0


def test_a_command_failing_before_its_row_exists_is_counted_as_received(
    engine: Engine, fake: FakeAdapter
) -> None:
    """Failed never exceeds received: an import whose fetch of the latest version fails (no
    row yet) and an update of an unknown catalog are counted on both, under the same label:
    the empty one (no catalog row, so no catalog name that is more than a message's words)."""

    def counts(actor: str, label: str) -> tuple[float, float]:
        received = metrics.COMMANDS_RECEIVED.labels(actor=actor, catalog=label)
        failed = [
            metrics.COMMANDS_FAILED.labels(actor=actor, catalog=label, error=e, will_retry="false")
            for e in ("UpstreamError", "UnknownCatalogError")
        ]
        return received._value.get(), sum(f._value.get() for f in failed)

    unreachable = FakeAdapter()
    unreachable.failures = [UpstreamError("upstream down", transient=True)]

    unknown = "0" * 32
    cases = [
        ("import_catalog", metrics.UNKNOWN_CATALOG, lambda: run_import(engine, unreachable)),
        (
            "update_catalog",
            metrics.UNKNOWN_CATALOG,
            lambda: service.update_catalog(engine, {"Fake": fake}, None, catalog_uuid=unknown),
        ),
    ]
    for actor, label, command in cases:
        received, failed = counts(actor, label)
        with pytest.raises((UpstreamError, UnknownCatalogError)):
            command()
        assert counts(actor, label) == (received + 1, failed + 1)
