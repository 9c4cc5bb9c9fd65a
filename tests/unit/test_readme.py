"""README.md stays true: the configuration table is generated from syncd.config, and every
metric and log event of the code is explained in the operations guide."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import fields
from pathlib import Path
from types import ModuleType

from prometheus_client import Counter
from prometheus_client.metrics import MetricWrapperBase

from syncd import metrics
from syncd.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_config_table", ROOT / "docs" / "gen_config_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_has_a_row_per_setting() -> None:
    for f in fields(Settings):
        assert re.search(rf"^\| `{env_name(f.name)}` \|", README, re.MULTILINE), env_name(f.name)


def test_readme_config_table_is_up_to_date() -> None:
    gen = _generator()
    assert gen.replace_table(README, gen.config_table()) == README, (
        "README.md's configuration table is stale: run python docs/gen_config_table.py --write"
    )


def test_readme_explains_every_metric() -> None:
    names = [
        f"{value._name}_total" if isinstance(value, Counter) else value._name
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
    ]
    assert "syncd_commands_received_total" in names
    missing = [name for name in names if f"`{name}`" not in README]
    assert not missing, f"metrics not explained in README.md: {missing}"


def test_readme_explains_every_log_event() -> None:
    pattern = re.compile(r"\blog\.(?:debug|info|warning|error|exception|critical)\(\s*\"([^\"]+)\"")
    events: set[str] = set()
    for path in [*(ROOT / "syncd").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")]:
        events.update(pattern.findall(path.read_text()))
    assert "command_received" in events
    missing = sorted(e for e in events if f"`{e}`" not in README)
    assert not missing, f"log events not explained in README.md: {missing}"
