"""Fixtures of the reliability suite: private servers, migrated databases, results records."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.db.migrate import upgrade
from tests.reliability.catalogs import Fingerprint, fingerprint
from tests.reliability.private_services import (
    PrivatePostgres,
    PrivateRabbitMQ,
    PrivateServiceError,
    private_postgres,
    private_rabbitmq,
)
from tests.reliability.results import CaseRecord, store
from tests.support.services import postgres_database, unique_name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    # Keep each phase's report on the item, so the `reliability` fixture's teardown knows
    # whether the test passed when it writes the results file.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[Callable[[str], CaseRecord]]:
    """`record = reliability("case_id")`: what the test tried, what held, its figures.

    Stored into the results file when the test ends, with its outcome, pass or fail.
    """
    records: list[CaseRecord] = []

    def make(case: str) -> CaseRecord:
        record = CaseRecord(case)
        records.append(record)
        return record

    yield make
    report = getattr(request.node, "rep_call", None)
    setup = getattr(request.node, "rep_setup", None)
    if report is None and setup is not None and setup.skipped:
        outcome, detail = "skipped", str(setup.longrepr)[-600:]
    elif report is None:
        outcome, detail = "error", "the test did not get past its setup"
    elif report.passed:
        outcome, detail = "passed", ""
    elif report.skipped:
        outcome, detail = "skipped", str(report.longrepr)[-600:]
    else:
        outcome = "failed"
        crash = getattr(report.longrepr, "reprcrash", None)
        detail = crash.message if crash is not None else str(report.longrepr)[-1500:]
    for record in records:
        store(record, outcome, detail[:3000])


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of the suite's own, which tests may stop and restart."""
    try:
        with private_postgres() as server:
            yield server
    except PrivateServiceError as exc:
        pytest.skip(f"cannot start a private PostgreSQL: {exc}")


@pytest.fixture(scope="session")
def private_mq() -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node of the suite's own, which tests may stop and restart."""
    try:
        with private_rabbitmq() as node:
            yield node
    except PrivateServiceError as exc:
        pytest.skip(f"cannot start a private RabbitMQ node: {exc}")


@pytest.fixture
def private_pg_url(private_pg: PrivatePostgres) -> str:
    """A fresh, migrated database on the private PostgreSQL."""
    url = private_pg.create_database(unique_name("syncd_rel"))
    upgrade(url)
    return url


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """Where this test's process logs go (kept by pytest for the last runs)."""
    path = tmp_path / "logs"
    path.mkdir()
    return path


@dataclass(frozen=True)
class Reference:
    """A clean import of one upstream file: what every faulted run must end up equal to."""

    source: str
    fingerprint: Fingerprint
    seconds: float


@pytest.fixture(scope="session")
def spack_full_source(upstream_dir: Path) -> str:
    """file:// URI of the complete Spack repology.json (gzip; the fetcher unpacks it)."""
    path = upstream_dir / "spack" / "repology.full.json.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path.as_uri()


@pytest.fixture(scope="session")
def spack_reference(spack_full_source: str) -> Iterator[Reference]:
    """The full Spack catalog imported once, in-process and undisturbed, into its own database."""
    from adapters.base import load_adapters
    from adapters.fetch import Fetcher
    from syncd.config import load_settings
    from syncd.db.engine import make_engine
    from syncd.service import import_catalog

    with postgres_database("syncd_rel_ref") as url:
        upgrade(url)
        settings = load_settings({"SYNCD_DATABASE_URL": url, "SYNCD_ALLOW_FILE_SOURCES": "true"})
        engine = make_engine(url)
        try:
            with Fetcher(settings) as fetcher:
                started = time.monotonic()
                result = import_catalog(
                    engine, load_adapters(settings), fetcher, name="Spack", source=spack_full_source
                )
                seconds = time.monotonic() - started
            yield Reference(spack_full_source, fingerprint(engine, result.catalog_id), seconds)
        finally:
            engine.dispose()
