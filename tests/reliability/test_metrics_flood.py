"""A flood of junk messages against the worker's /metrics: the series count stays fixed.

Before the metric labels were bounded, a rejected message was counted under the body's own
actor_name and a well-formed update of a random uuid under its own catalog label: 3,000 junk
names grew /metrics from 7.7 KB to 2 MB, longer names with 2,000 random uuids to 123 MB and
seconds per scrape (issue 26, item 8). Here a small flood and then one a hundred times bigger,
with long names, go through RabbitMQ to a real worker: junk actor names, well-formed updates
of random uuids, imports through no adapter under long distinct names, and imports whose name
hides a formatting character. After each, the worker's /metrics is scraped: the second must
have exactly the series of the first, and stay a few kilobytes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.harness import (
    command_env,
    queue_state,
    running,
    wait_consumers,
    wait_until,
    worker_process,
)
from tests.reliability.private_services import free_port
from tests.reliability.results import CaseRecord
from tests.reliability.test_malformed_messages import _envelope, _publish

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.timeout(420)]

SMALL = 10  # of each kind
BIG = 500  # of each kind: 4 kinds, 2,000 messages
LONG = 240  # characters of each junk actor name
ACTORS = {"import_catalog", "update_catalog", "invalid"}


def _flood(queue: str, count: int, tag: str) -> tuple[list[bytes], int]:
    """(bodies, how many the consumer rejects unrun): `count` of each kind."""

    def body(actor: str, kwargs: dict[str, Any]) -> bytes:
        return json.dumps(_envelope(queue, actor_name=actor, kwargs=kwargs)).encode()

    junk = [body(f"{tag}{i:06d}" + "x" * LONG, {}) for i in range(count)]
    hidden = [body("import_catalog", {"name": f"EESSI\u200b{tag}{i}"}) for i in range(count)]
    random_updates = [
        body("update_catalog", {"catalog_uuid": uuid.uuid4().hex}) for _ in range(count)
    ]
    no_adapter = [
        body("import_catalog", {"name": f"{tag}{i:06d}".ljust(100, "n"), "version": "v" * 50})
        for i in range(count)
    ]
    return junk + hidden + random_updates + no_adapter, len(junk) + len(hidden)


# Set by the worker from a periodic read of the dead-letter queue (every 30 s from its start),
# so present in one scrape and not yet in an earlier one; its one label is the queue's name.
PERIODIC = "syncd_dead_letter_queue_depth"
# Counted by the events relay on its own clock (a failed run's catalog.sync_failed may go out
# after the first scrape): compared apart, their labels from fixed sets.
EVENTS = "syncd_events_"
EVENT_TYPES = {"catalog.created", "catalog.deleted", "catalog.synced", "catalog.sync_failed"}


def _samples(text: str) -> list[str]:
    """The sample lines of syncd's own metrics (one per series), the periodic gauge aside."""
    return [
        line
        for line in text.splitlines()
        if line.startswith("syncd_") and not line.startswith((PERIODIC, EVENTS))
    ]


def _label_values(samples: list[str], label: str) -> set[str]:
    found = set()
    for line in samples:
        start = line.find(f'{label}="')
        if start >= 0:
            start += len(label) + 2
            found.add(line[start : line.index('"', start)])
    return found


def test_a_junk_flood_adds_no_series(
    pg_url: str, amqp_url: str, logs: Path, reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("metrics_flood")
    port = free_port()
    queue, env = command_env(pg_url, amqp_url, "rel_flood", metrics_port=port)
    worker = worker_process(env, logs / "worker.log", threads=2)
    dead_letters = f"{queue}.XQ"
    scrapes: list[httpx.Response] = []
    sent = rejected_total = 0
    with running(worker):
        wait_consumers(amqp_url, queue, timeout=90)
        for tag, count in (("a", SMALL), ("b", BIG)):
            bodies, rejected = _flood(queue, count, tag)
            _publish(amqp_url, queue, bodies)
            sent += len(bodies)
            rejected_total += rejected
            wait_until(
                lambda expected=sent: queue_state(amqp_url, dead_letters)[0] >= expected,
                timeout=300,
                what=f"all {sent} flood messages in the dead-letter queue",
            )
            scrapes.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30))
        rejections = len(worker.events("message_rejected"))
        alive = worker.alive()

    small, big = (_samples(r.text) for r in scrapes)
    sizes = [len(r.content) for r in scrapes]
    record.try_(
        f"{SMALL} then {BIG} messages of each kind through RabbitMQ to a worker: junk actor "
        f"names of {LONG}+ characters, imports whose name hides U+200B (both rejected unrun), "
        "well-formed updates of random uuids, imports through no adapter under 100-character "
        "names; the worker's /metrics scraped after each"
    )
    record.figure("messages", sent)
    record.figure("rejected unrun", rejections)
    record.figure("/metrics series after the small flood", len(small))
    record.figure("/metrics series after the big flood", len(big))
    record.figure("/metrics bytes after the small flood", sizes[0])
    record.figure("/metrics bytes after the big flood", sizes[1])
    record.summarize(
        f"{sent:,} junk messages: /metrics {len(small)} series and {sizes[0]:,} bytes after "
        f"{4 * SMALL}, {len(big)} series and {sizes[1]:,} bytes after {sent:,} (before the "
        "bounded labels, as reported: 3,000 junk names took it from 7.7 KB to 2 MB)"
    )
    assert alive, worker.tail()
    assert [r.status_code for r in scrapes] == [200, 200]
    assert rejections == rejected_total
    # The same series after 40 messages as after 2,040: none is per message.
    assert sorted(line.rpartition(" ")[0] for line in big) == sorted(
        line.rpartition(" ")[0] for line in small
    )
    assert _label_values(big, "actor") <= ACTORS, _label_values(big, "actor")
    events = [line for line in scrapes[1].text.splitlines() if line.startswith(EVENTS)]
    assert _label_values(events, "type") <= EVENT_TYPES, _label_values(events, "type")
    assert _label_values(big, "catalog") == {""}, _label_values(big, "catalog")
    assert sizes[1] < 64 * 1024 and sizes[1] - sizes[0] < 1024 + len(PERIODIC) * 2, sizes
    record.hold(
        "every flood message was dead-lettered; the worker's /metrics had the same series "
        'after 2,040 messages as after 40 (actor: import_catalog, update_catalog or "invalid"; '
        'catalog: "" for commands without a catalog row), and grew by a few bytes of counts'
    )
