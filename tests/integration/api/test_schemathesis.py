"""Property-based run over the OpenAPI document: no 500s, no response that breaks the schema.

Bounded (max_examples per operation) so that it fits in the suite; it runs on SQLite and on
PostgreSQL, where NUL bytes and JSONB make the database stricter than the schema. The schema
is read from an app on a throwaway database (the document does not depend on data); the
requests go to the test's own app through its TestClient.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session, sessionmaker

from syncd.api.app import create_app
from syncd.config import Settings
from syncd.db.engine import make_engine
from tests.integration.api.conftest import Sample
from tests.support.history_rows import History, seed_history

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _document() -> dict[str, Any]:
    engine = make_engine("sqlite://")
    try:
        app = create_app(
            Settings(database_url="sqlite://"),
            engine=engine,
            broker=StubBroker(),
            adapters={},
            fetcher=None,
        )
        return app.openapi()
    finally:
        engine.dispose()


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture
def history(session_factory: sessionmaker[Session], sample: Sample) -> History:
    """Runs and changes for the history lists and feeds to answer with."""
    return seed_history(session_factory, sample.eessi, sample.spack)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(
    case: Any, client: TestClient, sample: Sample, history: History, staff: dict[str, str]
) -> None:
    response = client.request(
        **case.as_transport_kwargs(base_url="http://testserver", headers=staff)
    )
    case.validate_response(response, checks=CHECKS)
