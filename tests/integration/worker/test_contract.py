"""The message contract: docs/messages.md, docs/message.schema.json and the worker's check
(syncd.publish.decode_message) say the same thing. No broker needed."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from syncd.broker import check_queue_settings, with_url_defaults
from syncd.config import Settings
from syncd.errors import InvalidMessageError
from syncd.publish import (
    MAX_MESSAGE_BYTES,
    build_message,
    decode_message,
    normalize_uuid,
)

DOCS = Path(__file__).resolve().parents[3] / "docs"
QUEUE = "syncd"


def schema() -> dict[str, Any]:
    return json.loads((DOCS / "message.schema.json").read_text())


def doc_blocks(language: str) -> list[str]:
    text = (DOCS / "messages.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def doc_examples() -> list[dict[str, Any]]:
    return [json.loads(block) for block in doc_blocks("json")]


VALIDATOR = jsonschema_rs.validator_for(schema())


def worker_accepts(fields: Any) -> bool:
    try:
        decode_message(json.dumps(fields).encode(), queue_name=QUEUE)
    except InvalidMessageError:
        return False
    return True


def test_documented_examples_are_valid_and_accepted() -> None:
    examples = doc_examples()
    assert {e["actor_name"] for e in examples} == {"import_catalog", "update_catalog"}
    for example in examples:
        assert VALIDATOR.is_valid(example), example
        assert worker_accepts(example), example


def test_documented_python_example_builds_valid_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the doc's pika example with a fake channel and check what it would publish."""
    published: list[dict[str, Any]] = []

    class Channel:
        def confirm_delivery(self) -> None: ...

        def basic_publish(self, *, exchange, routing_key, body, properties, mandatory):  # type: ignore[no-untyped-def]
            assert (exchange, routing_key, mandatory) == ("", QUEUE, True)
            assert properties.delivery_mode == 2
            published.append(json.loads(body))

    class Connection:
        def __init__(self, params: Any) -> None: ...

        def channel(self) -> Channel:
            return Channel()

        def close(self) -> None: ...

    import pika

    monkeypatch.setattr(pika, "BlockingConnection", Connection)
    (block,) = doc_blocks("python")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(block, "docs/messages.md", "exec"), namespace)

    assert [m["actor_name"] for m in published] == ["import_catalog", "update_catalog"]
    for message in published:
        assert VALIDATOR.is_valid(message) and worker_accepts(message)


def test_messages_syncd_publishes_match_the_schema() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("import_catalog", {"name": "EESSI"}),
        ("import_catalog", {"name": "Spack", "version": None, "source": "file:///m/r.json"}),
        ("update_catalog", {"catalog_uuid": normalize_uuid("5f0c3a4e9b2d4c1f8e7a6b5c4d3e2f10")}),
        ("import_catalog", {"name": "EESSI", "force": True}),
        ("update_catalog", {"catalog_uuid": "5f0c3a4e9b2d4c1f8e7a6b5c4d3e2f10", "force": False}),
        (
            "update_catalog",
            {"catalog_uuid": "5f0c3a4e9b2d4c1f8e7a6b5c4d3e2f10", "keep_missing": True},
        ),
        (
            "update_catalog",
            {"catalog_uuid": "5f0c3a4e9b2d4c1f8e7a6b5c4d3e2f10", "allow_shrink": True},
        ),
    ]
    for actor, kwargs in cases:
        fields = build_message(QUEUE, actor, kwargs).asdict()
        fields["args"] = list(fields["args"])
        assert VALIDATOR.is_valid(fields) and worker_accepts(fields)


# Wrong values to put in each place; both the schema and the worker must refuse them.
WRONG_VALUES: list[Any] = [None, True, 1.5, -1, "", " ", "x", [], [1], {}, {"a": 1}]


def mutations(example: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every envelope one change away from a valid example."""
    out: list[tuple[str, dict[str, Any]]] = []
    for key in example:
        if key == "queue_name":
            continue  # the worker also requires it to equal the delivering queue; see below
        removed = copy.deepcopy(example)
        del removed[key]
        out.append((f"without {key}", removed))
        for value in WRONG_VALUES:
            changed = copy.deepcopy(example)
            changed[key] = value
            out.append((f"{key}={value!r}", changed))
    optional = ["version", "source", "force", "keep_missing", "allow_shrink", "extra"]
    for key in [*example["kwargs"], *optional]:
        for value in [*WRONG_VALUES, "a" * 101, "a" * 2001, "0" * 32]:
            changed = copy.deepcopy(example)
            changed["kwargs"][key] = value
            out.append((f"kwargs.{key}={value!r}", changed))
        removed = copy.deepcopy(example)
        removed["kwargs"].pop(key, None)
        out.append((f"kwargs without {key}", removed))
    for key, value in [
        ("retries", 2),
        ("retries", -1),
        ("traceback", "Traceback ..."),
        ("requeue_timestamp", 1795761600000),
        ("eta", 1795761600000),
        ("max_retries", 100),
        ("time_limit", 1),
    ]:
        changed = copy.deepcopy(example)
        changed["options"][key] = value
        out.append((f"options.{key}={value!r}", changed))
    extra = copy.deepcopy(example)
    extra["priority"] = 1
    out.append(("extra field", extra))
    for timestamp in [1795761600, 1795761600000.0, "1795761600000"]:
        changed = copy.deepcopy(example)
        changed["message_timestamp"] = timestamp
        out.append((f"timestamp {timestamp!r}", changed))
    swapped = copy.deepcopy(example)
    swapped["actor_name"] = (
        "update_catalog" if example["actor_name"] == "import_catalog" else "import_catalog"
    )
    out.append(("other actor's kwargs", swapped))
    return out


@pytest.mark.parametrize("example", doc_examples(), ids=lambda e: e["actor_name"])
def test_schema_and_worker_agree_on_every_mutation(example: dict[str, Any]) -> None:
    disagreements = [
        (what, VALIDATOR.is_valid(fields), worker_accepts(fields))
        for what, fields in mutations(example)
        if VALIDATOR.is_valid(fields) != worker_accepts(fields)
    ]
    assert disagreements == []


def test_worker_refuses_what_the_schema_cannot_know() -> None:
    example = doc_examples()[0]
    other_queue = dict(example, queue_name="elsewhere")
    assert VALIDATOR.is_valid(other_queue) and not worker_accepts(other_queue)
    with_eta = dict(example, options={"eta": 1795761600000})
    assert not worker_accepts(with_eta)
    # On the delay queue, Dramatiq's own eta is fine.
    delayed = dict(example, queue_name="syncd.DQ", options={"eta": 1795761600000, "retries": 1})
    decode_message(json.dumps(delayed).encode(), queue_name="syncd.DQ")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("version", "\ud800x"),
        ("name", "EE\udfffSSI"),
        ("source", "https://x/\x00"),
        ("id", "\ud800"),
    ],
)
def test_lone_surrogates_and_nul_are_refused(where: str, value: str) -> None:
    fields = build_message(QUEUE, "import_catalog", {"name": "EESSI"}).asdict()
    fields["args"] = []
    if where == "id":
        fields["message_id"] = value
    else:
        fields["kwargs"][where] = value
    body = json.dumps(fields).encode()  # valid JSON: the surrogate travels as \ud800
    with pytest.raises(InvalidMessageError, match=r"surrogate|NUL"):
        decode_message(body, queue_name=QUEUE)


def test_an_eta_beyond_the_longest_backoff_is_refused() -> None:
    example = doc_examples()[0]
    now = int(time.time() * 1000)
    limit = Settings().max_backoff_ms

    def delayed(eta: int) -> bytes:
        fields = dict(example, queue_name="syncd.DQ", options={"eta": eta, "retries": 1})
        return json.dumps(fields).encode()

    decode_message(delayed(now + limit), queue_name="syncd.DQ", max_delay_ms=limit)
    with pytest.raises(InvalidMessageError, match="'eta' is 86400 s in the future"):
        decode_message(delayed(now + 86_400_000), queue_name="syncd.DQ", max_delay_ms=limit)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"not json at all", "not JSON"),
        (b"[1, 2, 3]", "an array, not a JSON object"),
        (b'{"queue_name": "syncd"}', "lacks actor_name"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "the limit is"),
        (b'{"a": NaN}', "not JSON"),
        (b"[" * 200_000, "too deeply"),
    ],
)
def test_undecodable_bodies_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessageError, match=reason):
        decode_message(body, queue_name=QUEUE)


def test_reasons_name_the_problem() -> None:
    example = doc_examples()[0]
    cases = {
        "unknown actor 'drop_database'": dict(example, actor_name="drop_database"),
        "unexpected kwargs colour": dict(example, kwargs={"name": "EESSI", "colour": "red"}),
        "needs the kwarg 'name'": dict(example, kwargs={}),
        "not in milliseconds": dict(example, message_timestamp=1795761600),
    }
    for reason, fields in cases.items():
        with pytest.raises(InvalidMessageError, match=re.escape(reason)):
            decode_message(json.dumps(fields).encode(), queue_name=QUEUE)


def test_queue_settings_stay_below_the_consumer_timeout() -> None:
    check_queue_settings(Settings())
    with pytest.raises(ValueError, match="SYNCD_TIME_LIMIT_MS must be below"):
        check_queue_settings(Settings(time_limit_ms=30 * 60 * 1000))
    with pytest.raises(ValueError, match="SYNCD_MAX_BACKOFF_MS must be below"):
        check_queue_settings(Settings(max_backoff_ms=31 * 60 * 1000))
    with pytest.raises(ValueError, match="SYNCD_MIN_BACKOFF_MS"):
        check_queue_settings(Settings(min_backoff_ms=700_000))


def test_a_negative_delivery_limit_is_refused() -> None:
    check_queue_settings(Settings(delivery_limit=0))
    with pytest.raises(ValueError, match="SYNCD_DELIVERY_LIMIT must be 0 or more"):
        check_queue_settings(Settings(delivery_limit=-1))


def test_broker_url_gets_heartbeat_and_timeouts_unless_set() -> None:
    url = with_url_defaults("amqp://u:p@rabbit:5672/%2F?heartbeat=10")
    assert "heartbeat=10" in url and "blocked_connection_timeout=30" in url
    assert url.startswith("amqp://u:p@rabbit:5672/%2F?")
    both = with_url_defaults("amqp://a/v1;amqp://b/v1")
    assert both.count("heartbeat=30") == 2
