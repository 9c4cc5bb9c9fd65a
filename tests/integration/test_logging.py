"""syncd.logging in a process of its own (it configures process-wide state): every line is
one JSON object with timestamp, level, event, logger and role; job context reaches
structlog and stdlib lines alike; library loggers come out in the same format."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from typing import Any

SCRIPT = r"""
import logging, threading, uuid, warnings
from dataclasses import replace
from syncd.config import Settings
from syncd.logging import bind_job_context, configure_logging, get_logger

configure_logging(replace(Settings(), log_format="json"), role="worker")
log = get_logger("syncd.test")
log.info("plain", answer=42, catalog=uuid.UUID(int=1))
with bind_job_context(catalog_uuid="c0ffee", catalog_name="EESSI", message_id="m-1",
                      actor="update_catalog", tick_id=None):
    log.info("in_job")
    logging.getLogger("dramatiq.worker.WorkerThread").warning("stdlib %s", "line")
log.info("after_job")
logging.getLogger("pika.connection").info("pika chatter")
logging.getLogger("pika.connection").warning("pika trouble")
logging.getLogger("apscheduler.scheduler").info("Scheduler started")
logging.getLogger("uvicorn.access").info(
    '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/health", "1.1", 200
)
warnings.warn("old thing", DeprecationWarning, stacklevel=1)
try:
    raise ValueError("boom")
except ValueError:
    log.exception("failed")
url = "https://mirror-user:pa55word@mirror.example/eessi/"
log.info("with_url", source=url, nested={"urls": [url]})
logging.getLogger("httpx").warning("HTTP Request: GET %s", url)
try:
    raise RuntimeError(f"cannot fetch {url}")
except RuntimeError:
    log.exception("failed_url")
from syncd.logging import held_back_logs, replay_logs
with held_back_logs("pika") as held:
    logging.getLogger("pika.adapters.utils").error("held back")
    logging.getLogger("syncd.other").warning("not held")
logging.getLogger("pika.adapters.utils").error("after the block")
with held_back_logs("pika") as replayed:
    logging.getLogger("pika.connection").error("replayed")
replay_logs(replayed)
thread = threading.Thread(target=lambda: 1 / 0, name="doomed")
thread.start()
thread.join()
print("stdout stays clean")
"""


@functools.cache  # one process serves every test here
def _run() -> tuple[list[dict[str, Any]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # each line is JSON
    return lines, result.stdout


def _by_event(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["event"]: line for line in lines}


def test_every_line_is_json_with_the_common_fields() -> None:
    lines, stdout = _run()
    assert stdout == "stdout stays clean\n"
    for line in lines:
        for key in ("timestamp", "level", "event", "logger"):
            assert key in line, line
        assert line["role"] == "worker"
    plain = _by_event(lines)["plain"]
    assert plain["answer"] == 42
    assert plain["catalog"] == "00000000-0000-0000-0000-000000000001"  # str(), not repr()


def test_job_context_reaches_structlog_and_stdlib_lines_and_is_unbound_after() -> None:
    events = _by_event(_run()[0])
    for name in ("in_job", "stdlib line"):
        line = events[name]
        assert line["catalog_uuid"] == "c0ffee"
        assert line["catalog_name"] == "EESSI"
        assert line["message_id"] == "m-1"
        assert line["actor"] == "update_catalog"
        assert "tick_id" not in line  # None values are not bound
    assert events["stdlib line"]["logger"] == "dramatiq.worker.WorkerThread"
    assert "catalog_uuid" not in events["after_job"]


def test_library_lines_share_the_format() -> None:
    lines, _ = _run()
    events = _by_event(lines)
    assert "pika chatter" not in events  # pika INFO is hidden at the default level
    assert events["pika trouble"]["level"] == "warning"
    assert events["Scheduler started"]["logger"] == "apscheduler.scheduler"
    access = next(line for line in lines if line["logger"] == "uvicorn.access")
    assert (access["method"], access["path"], access["status"]) == ("GET", "/health", 200)
    warning = next(line for line in lines if line["logger"] == "py.warnings")
    assert "old thing" in warning["event"]


def test_exceptions_are_one_line_each() -> None:
    events = _by_event(_run()[0])
    assert "ValueError: boom" in events["failed"]["exception"]
    crash = events["uncaught_exception_in_thread"]
    assert crash["thread_name"] == "doomed"
    assert "ZeroDivisionError" in crash["exception"]


def test_no_line_shows_url_credentials() -> None:
    lines, _ = _run()
    events = _by_event(lines)
    shown = "https://***@mirror.example/eessi/"
    assert events["with_url"]["source"] == shown
    assert events["with_url"]["nested"] == {"urls": [shown]}
    assert events[f"HTTP Request: GET {shown}"]["logger"] == "httpx"
    assert shown in events["failed_url"]["exception"]
    assert not [line for line in lines if "pa55word" in json.dumps(line)]


def test_held_back_logs_are_dropped_unless_replayed() -> None:
    events = _by_event(_run()[0])
    assert "held back" not in events
    assert events["not held"]["logger"] == "syncd.other"  # other loggers pass
    assert events["after the block"]["level"] == "error"
    assert events["replayed"]["logger"] == "pika.connection"
