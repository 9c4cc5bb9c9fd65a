"""Issue 15 end to end through `syncd run`: a Spack import, a refresh from a changed copy and
a refresh from a truncated copy, on the embedded default and on PostgreSQL + RabbitMQ. The
runs list, the changes list, both Atom feeds and the events (a consumer bound to
`syncd.events`, or the embedded default's `event_out` log lines) must tell the same story,
and the refused refresh must lose nothing."""

from __future__ import annotations

import json
import secrets
import uuid as uuid_module
from typing import Any

import feedparser
import pytest

from tests.e2e.test_run_all import (  # noqa: F401  (fixtures used by name)
    COMMAND_TIMEOUT,
    RunningSyncd,
    _import,
    _wait_for,
    running,
    upstream,
)
from tests.support.catalog_cli import CHANGED_SPACK_NEWS, FIRST, changed_spack, truncated_spack
from tests.support.events import bind_queue, check_body, take
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_data import dumps

pytestmark = pytest.mark.slow

CATALOGS = "/api/marketplace-software-catalogs/"
RUNS = "/api/marketplace-software-catalog-runs/"
CHANGES = "/api/marketplace-software-changes/"
EXPECTED = CHANGED_SPACK_NEWS


def _key(change: dict[str, Any]) -> tuple[str, str, str]:
    return (change["change"], change["package_name"], change["version"])


def _news(changes: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """The changes a reader cares about: targets are summarised per version, and updates of
    derived fields only (a version's position, a package's counts) are bookkeeping."""
    derived = {"sort_index", "version_count", "extension_count"}
    return {
        _key(c)
        for c in changes
        if not c["change"].startswith("target")
        and not (
            c["change"].endswith("_updated") and set(c["details"].get("fields", [])) <= derived
        )
    }


def _urn(hex_uuid: str) -> str:
    return uuid_module.UUID(hex_uuid).urn


def _runs(run: RunningSyncd, catalog: str) -> list[dict[str, Any]]:
    answer = run.client.get(RUNS, params={"catalog_uuid": catalog})
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()
    return rows


def _wait_runs(run: RunningSyncd, catalog: str, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        rows = _runs(run, catalog)
        return rows if len(rows) >= count and all(r["finished"] for r in rows) else None

    return _wait_for(f"{count} finished runs", enough, COMMAND_TIMEOUT)


def _all_changes(run: RunningSyncd, run_uuid: str) -> list[dict[str, Any]]:
    answer = run.client.get(CHANGES, params={"run_uuid": run_uuid, "page_size": 300})
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["X-Result-Count"]) == len(answer.json())
    rows: list[dict[str, Any]] = answer.json()
    return rows


def _events(run: RunningSyncd, queue: str, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    amqp = run.env.get("SYNCD_BROKER_URL", "")
    if amqp:
        seen.extend(body for _, _, body in take(amqp, queue, 0, timeout=0))
        return seen
    lines = [json.loads(line) for line in run.log_lines() if line.startswith("{")]
    return [line["body"] for line in lines if line.get("event") == "event_out"]


def test_runs_changes_feeds_and_events_tell_the_same_story(
    running: RunningSyncd,  # noqa: F811
    upstream: FakeUpstream,  # noqa: F811
) -> None:
    amqp = running.env.get("SYNCD_BROKER_URL", "")
    queue = f"e2e_history_{secrets.token_hex(3)}"
    if amqp:
        bind_queue(amqp, "syncd.events", queue)
    seen: list[dict[str, Any]] = []
    token = running.syncd("token", "create", "--staff", "--name", "e2e").stdout.strip()
    staff = {"Authorization": f"Token {token}"}

    # 1. The first import: one run, one catalog_imported change.
    upstream.set_file(upstream.SPACK, dumps(FIRST))
    _import(running.client, token, {"name": "Spack"})

    def catalog() -> str | None:
        rows = [r for r in running.client.get(CATALOGS).json() if r["name"] == "Spack"]
        return rows[0]["uuid"] if rows and rows[0]["last_successful_update"] else None

    uuid = _wait_for("the Spack catalog", catalog, COMMAND_TIMEOUT)
    (first,) = _wait_runs(running, uuid, 1)
    assert (first["trigger"], first["outcome"]) == ("api", "succeeded")
    imported = _all_changes(running, first["uuid"])
    assert [c["change"] for c in imported] == ["catalog_imported"]
    assert imported[0]["details"]["packages"] == 12

    # 2. A refresh from a changed copy: the changes the copy made, nothing else.
    upstream.set_file(upstream.SPACK, dumps(changed_spack()))
    answer = running.client.post(f"{CATALOGS}{uuid}/update_catalog/", headers=staff)
    assert answer.status_code == 202, answer.text
    second = _wait_runs(running, uuid, 2)[0]  # newest first
    assert (second["trigger"], second["outcome"]) == ("api", "succeeded")
    assert second["counts"]["packages"]["created"] == 1
    assert second["counts"]["packages"]["deleted"] == 2
    changes = _all_changes(running, second["uuid"])
    assert second["change_count"] == len(changes)
    assert _news(changes) == EXPECTED

    # 3. Both feeds: one entry per run that changed something, newest first, stable ids.
    for path in (f"/feeds/catalogs/{uuid}.atom", "/feeds/changes.atom"):
        body = running.client.get(path)
        assert body.status_code == 200, body.text
        feed = feedparser.parse(body.content)
        assert not feed.bozo, feed.bozo_exception
        ids = [entry.id for entry in feed.entries]
        assert ids[:2] == [_urn(second["uuid"]), _urn(first["uuid"])]
        assert "1 package added" in feed.entries[0].title
        assert "pkg-100" in feed.entries[0].summary
        assert feedparser.parse(running.client.get(path).content).entries[0].id == ids[0]

    # 4. A copy with 9 of 11 packages gone: refused, nothing lost, not retried.
    upstream.set_file(upstream.SPACK, dumps(truncated_spack(2)))
    answer = running.client.post(f"{CATALOGS}{uuid}/update_catalog/", headers=staff)
    assert answer.status_code == 202, answer.text
    third = _wait_runs(running, uuid, 3)[0]
    assert third["outcome"] == "refused"
    assert "SYNCD_MAX_SHRINK_FRACTION" in third["error"]
    assert third["change_count"] == 0
    stored = running.client.get(f"{CATALOGS}{uuid}/").json()
    assert stored["package_count"] == 11
    assert "SYNCD_MAX_SHRINK_FRACTION" in stored["update_errors"]
    assert len(_runs(running, uuid)) == 3  # a refusal is final: no retry ran

    # 5. The events say the same: two catalog.synced (the second with the same changes) and
    # one catalog.sync_failed that will not be retried.
    def all_events() -> list[dict[str, Any]] | None:
        mine = [e for e in _events(running, queue, seen) if e["catalog"]["uuid"] == uuid]
        return mine if len(mine) >= 3 else None

    events = _wait_for("three catalog events", all_events, COMMAND_TIMEOUT)
    for event in events:
        check_body(event)
    assert [e["type"] for e in events] == [
        "catalog.synced",
        "catalog.synced",
        "catalog.sync_failed",
    ]
    synced = events[1]["payload"]
    assert synced["run_uuid"] == second["uuid"]
    assert synced["change_count"] == len(changes)
    assert _news(synced["changes"]) == EXPECTED
    assert synced["changes_url"].endswith(f"run_uuid={second['uuid']}")
    failed = events[2]["payload"]
    assert (failed["run_uuid"], failed["outcome"]) == (third["uuid"], "refused")
    assert failed["will_retry"] is False
