"""`syncd import NAME --dry-run` and `syncd update UUID --dry-run [--keep-missing]`: what the
command would change, printed as text or (--json) as one JSON document; nothing written.

A dry run always runs in this process, broker or not: it needs the database and the
upstream only, and a worker could add nothing to it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from syncd.cli.common import _adapters, _close, _engine, _error, _fetcher
from syncd.config import Settings
from syncd.errors import SyncdError
from syncd.sync.plan_changes import CHANGE_KINDS  # the sync history's change kinds

SHOWN_PER_KIND = 10  # names per change kind in the text form; --json lists up to 1000
KINDS = ("packages", "versions", "targets", "parent_links")


def dry_run_command(settings: Settings, args: argparse.Namespace, command: str) -> int:
    """Run the dry run of `command` ("import" or "update") and print its plan."""
    from syncd import service

    engine = _engine(settings)
    fetcher = _fetcher(settings)
    try:
        adapters = _adapters(settings)
        if command == "import":
            result = service.dry_run_import(
                engine, adapters, fetcher, name=args.name, version=args.version,
                source=args.source, force=args.force,
            )  # fmt: skip
        else:
            result = service.dry_run_update(
                engine, adapters, fetcher, catalog_uuid=args.uuid,
                keep_missing=args.keep_missing, force=args.force,
            )  # fmt: skip
    except SyncdError as exc:
        _error(f"dry run of {command} failed (nothing was written): {exc.message}")
        return 1
    finally:
        _close(fetcher)
        engine.dispose()
    document = plan_document(result)
    print(json.dumps(document, indent=2) if args.json else "\n".join(plan_lines(document)))
    return 0


def plan_document(result: Any) -> dict[str, Any]:
    """The --json form: a dry run's result as plain JSON values."""
    plan = result.plan
    doc: dict[str, Any] = {
        "dry_run": True,
        "written": False,
        "command": result.command,
        "catalog": {
            "uuid": result.catalog_uuid or None,
            "name": result.name,
            "version": result.version,
            "catalog_type": result.catalog_type,
            "exists": not result.creates,
        },
        "keep_missing": result.keep_missing,
        "upstream_unchanged": plan is None,
    }
    if plan is None:  # the same keys, so that a consumer needs no second shape
        totals = dict.fromkeys(CHANGE_KINDS, 0)
        return doc | {"counts": None, "catalog_fields": [], "shrink_guard": None,
                      "change_totals": totals, "changes": [], "changes_not_listed": 0,
                      "warnings": []}  # fmt: skip
    named = [c.as_dict() for kind in plan.changes.named for c in plan.changes.named[kind]]
    doc.update(
        counts=plan.stats.as_dict(),
        catalog_fields=plan.catalog_fields,
        shrink_guard=plan.shrink.as_dict(),
        change_totals=plan.changes.totals,
        changes=named,
        changes_not_listed=sum(plan.changes.totals.values()) - len(named),
        warnings=plan.warnings,
    )
    return doc


def plan_lines(doc: dict[str, Any]) -> list[str]:
    """The text form of plan_document's result."""
    catalog = doc["catalog"]
    where = f"catalog {catalog['uuid']}" if catalog["exists"] else "a new catalog"
    where += ", keep missing" if doc["keep_missing"] else ""
    head = f"dry run of {doc['command']} of {catalog['name']} {catalog['version']} ({where})"
    lines = [f"{head}: nothing was written"]
    if doc["upstream_unchanged"]:
        return [*lines, "upstream not modified: nothing would change"]
    lines.append("would write (created / updated / deleted / unchanged):")
    for kind in KINDS:
        c = doc["counts"][kind]
        lines.append(
            f"  {kind:<13}{c['created']:>8} {c['updated']:>8} {c['deleted']:>8} "
            f"{c['unchanged']:>10}"
        )
    fields = ", ".join(doc["catalog_fields"]) or "none"
    lines.append(f"catalog fields that would change: {fields}")
    lines.append(_shrink_line(doc["shrink_guard"]))
    for kind, total in doc["change_totals"].items():
        if not total:
            continue
        names = [_name(c) for c in doc["changes"] if c["change"] == kind][:SHOWN_PER_KIND]
        rest = f", and {total - len(names)} more" if total > len(names) else ""
        lines.append(f"{kind} ({total}): {', '.join(names)}{rest}")
    lines.extend(f"warning: {text}" for text in doc["warnings"])
    return lines


def _shrink_line(guard: dict[str, Any]) -> str:
    # The verdict is the sync's own (syncd/sync/shrink.py), with the process's setting.
    fraction = guard["max_shrink_fraction"]
    limit = f"limit {round(fraction * 100)}%" if fraction < 1 else "off"
    verdict = "would refuse" if guard["verdict"] == "refuse" else "pass"
    removes = f"{guard['packages_removed']} of {guard['packages_before']} packages"
    if guard.get("versions_before"):  # counted when the guard is on
        removes += f", {guard['versions_removed']} of {guard['versions_before']} versions"
    return f"shrink guard: {verdict} (removes {removes}; {limit})"


def _name(change: dict[str, Any]) -> str:
    name = change["package_name"]
    if "version" in change:
        name += f" {change['version']}"
        if change["module_version"] and change["module_version"] != change["version"]:
            name += f" ({change['module_version']})"
    if "targets" in change:
        name += f" ({change['targets']} target{'s' if change['targets'] != 1 else ''})"
    return name
