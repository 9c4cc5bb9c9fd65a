"""The suite's results file: what each case tried, what held, and its figures.

Every reliability test records into one JSON file (SYNCD_RELIABILITY_RESULTS, default
build/reliability-results.json); `python -m tests.reliability.report` renders it into
docs/reliability.md. Cases are listed here once, in the order the report shows them, so a
case that did not run shows up as "not run" instead of silently vanishing from the table.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS = REPO_ROOT / "build" / "reliability-results.json"

# case id -> title, in report order.
CASES: dict[str, str] = {
    "worker_sigkill": "Worker SIGKILLed mid-import, 5 times",
    "worker_sigkill_update": "Worker SIGKILLed mid-update, 5 times",
    "poison_message": "Poison message: the worker SIGKILLed 4 times by one command",
    "run_stop_pending": "`syncd run` stopped (SIGTERM) with accepted commands",
    "rabbitmq_restart": "RabbitMQ restarted while 500 commands are published",
    "events_sigkill": "Events outbox: worker SIGKILLed between commit and publish",
    "events_crash_before_commit": "Events outbox: a crash before the commit",
    "events_rabbitmq_outage": "Events outbox: RabbitMQ unreachable while events are written",
    "events_rabbitmq_restart": "Events outbox: RabbitMQ node restarted",
    "rabbitmq_freeze": "RabbitMQ frozen (SIGSTOP) while the API publishes",
    "postgres_restart": "PostgreSQL restarted during a sync",
    "api_database_down": "API while its database is down",
    "upstream_faults": "Upstream faults from the fake upstream",
    "duplicate_messages": "1,000 duplicate messages for one catalog",
    "scheduler_failover": "Two schedulers, leader killed",
    "api_schemathesis": "API fuzzing with schemathesis",
    "api_edge_inputs": "API: hand-picked edge-case inputs",
    "api_auth": "API tokens: wrong, absent, revoked, non-staff",
    "api_body_limits": "API: oversized bodies and deeply nested JSON",
    "api_query_cost": "API: the costliest anonymous queries",
    "api_slow_readers": "Slow anonymous readers: the database pool, /health and send timeout",
    "api_slow_reader_cache": "One slow reader filling the response cache for a URL",
    "api_source_url": "source_url schemes and private hosts",
    "api_malformed_urls": "Malformed source URLs on create, PUT, PATCH and import_catalog",
    "worker_malformed_source": "Worker given malformed sources and impossible ports",
    "api_cache_refused_writes": "Refused writes (401, 405, 400) and the response cache",
    "api_drf_methods": "OPTIONS, 405 Allow and trimmed text fields, as DRF answers",
    "api_header_timeout": "Clients that never finish their request headers",
    "api_body_flood": "Anonymous flood of deeply nested 1 MB bodies",
    "api_nosniff": "X-Content-Type-Options: nosniff on every kind of answer",
    "api_head_length": "HEAD never claims Content-Length: 0",
    "api_docs_offline": "The docs page in a browser without internet",
    "api_cors_browser": "CORS: a web page on another origin, in Chromium",
    "delete_during_sync": "Catalog deleted through the API during a PostgreSQL sync",
    "fetch_refuses_private": "Worker's fetcher refuses private sources",
    "malformed_messages": "Malformed AMQP messages",
    "message_metrics": "Hostile messages against /metrics and the delay queue",
    "metrics_flood": "A flood of junk messages against the worker's /metrics",
    "publisher_reconnect": "API publisher connection closed by RabbitMQ",
    "source_credentials": "Credentials in a source URL",
    "api_load": "Load: 50 API clients for 30 s during an import",
    "torn_reads": "API reads while syncs commit (PostgreSQL): one snapshot per response",
    "torn_reads_sqlite": "API reads while syncs commit (SQLite): one snapshot per response",
    "operator_edit_during_sync": "An operator's PATCH while a sync of the same catalog runs",
    "import_unknown_version": "import_catalog of a version upstream does not offer",
    "sqlite_writes_during_sync": "SQLite: an unrelated PATCH during a full EESSI import",
}


def results_path() -> Path:
    return Path(os.environ.get("SYNCD_RELIABILITY_RESULTS", str(DEFAULT_RESULTS)))


@dataclass
class CaseRecord:
    """What one case tried and what held; filled in by the test while it runs."""

    case: str
    tried: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # the figures that matter most, in one line, for the summary table
    started: float = field(default_factory=time.monotonic)

    def try_(self, text: str) -> None:
        self.tried.append(text)

    def hold(self, text: str) -> None:
        self.held.append(text)

    def figure(self, name: str, value: Any) -> None:
        self.figures[name] = value

    def summarize(self, text: str) -> None:
        self.key = text

    def as_dict(self, outcome: str, detail: str = "") -> dict[str, Any]:
        return {
            "title": CASES.get(self.case, self.case),
            "tried": self.tried,
            "held": self.held,
            "figures": self.figures,
            "key": self.key,
            "outcome": outcome,
            "detail": detail,
            "duration_s": round(time.monotonic() - self.started, 1),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def load_results(path: Path | None = None) -> dict[str, Any]:
    path = path or results_path()
    if not path.exists():
        return {"cases": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    data.setdefault("cases", {})
    return data


def store(record: CaseRecord, outcome: str, detail: str = "") -> None:
    """Merge one case into the results file (read-modify-write: tests run one at a time)."""
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = load_results(path)
    data["cases"][record.case] = record.as_dict(outcome, detail)
    data["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    data["machine"] = {"cpus": os.cpu_count()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
