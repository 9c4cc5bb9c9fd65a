"""The serving entry points keep the collector's full passes out of requests
(app.freeze_startup_heap): run in a process of its own, since freezing is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from syncd.api.app import FULL_PASS_AFTER, freeze_startup_heap
before = gc.get_threshold()
cycle = []
cycle.append(cycle)  # garbage in a cycle: collected, not frozen
del cycle
freeze_startup_heap()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "full_pass_after": FULL_PASS_AFTER, "garbage": len(gc.garbage)}))
"""


def _probe() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_startup_heap_is_frozen_and_full_passes_are_rare() -> None:
    result = _probe()
    before, after = result["before"], result["after"]
    assert isinstance(before, list) and isinstance(after, list)
    assert result["frozen"] > 10_000  # the imported modules and what they built
    assert after[:2] == before[:2]  # young generations: Python's own thresholds
    assert after[2] == result["full_pass_after"] > before[2]
    assert result["garbage"] == 0
