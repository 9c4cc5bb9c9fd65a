"""A small renderer for the subset of Helm's Go templates that deploy/helm/syncd uses.

Used by test_deploy.py where no `helm` binary is installed (Debian does not package it), so
the chart is still rendered and its manifests checked. It supports exactly what the chart
uses - `{{ .Values.x }}`, `{{- ... -}}` trimming, if/else/end, range over a map with
`$key, $value`, define/include, pipelines, and the functions in `FUNCTIONS` - and fails
loudly on anything else, so a template that outgrows it is noticed rather than half-rendered.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)


class TemplateError(Exception):
    pass


@dataclass
class _Node:
    kind: str  # text, action, if, range, define
    value: str = ""
    body: list[_Node] = field(default_factory=list)
    orelse: list[_Node] = field(default_factory=list)


def _lex(source: str) -> list[tuple[str, str]]:
    """Text and action tokens, with Go's `{{-` / `-}}` whitespace trimming applied."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(source):
        text = source[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        tokens.append(("text", text))
        tokens.append(("action", match.group(2)))
        trim_next = bool(match.group(3))
        pos = match.end()
    tail = source[pos:]
    tokens.append(("text", tail.lstrip() if trim_next else tail))
    return tokens


def _parse(tokens: list[tuple[str, str]]) -> list[_Node]:
    stack: list[tuple[_Node, list[_Node]]] = []
    root: list[_Node] = []
    current = root
    for kind, value in tokens:
        if kind == "text":
            if value:
                current.append(_Node("text", value))
            continue
        word = value.split(None, 1)[0] if value else ""
        rest = value[len(word) :].strip()
        if word in {"if", "range", "define"}:
            node = _Node(word, rest)
            current.append(node)
            stack.append((node, current))
            current = node.body
        elif word == "else":
            if not stack or stack[-1][0].kind != "if" or rest:
                raise TemplateError(f"unsupported else: {value!r}")
            current = stack[-1][0].orelse
        elif word == "end":
            if not stack:
                raise TemplateError("end without a block")
            _, current = stack.pop()
        elif value.startswith("/*"):
            continue
        elif word in {"with", "template", "block", "break", "continue"}:
            raise TemplateError(f"unsupported action: {value!r}")
        else:
            current.append(_Node("action", value))
    if stack:
        raise TemplateError(f"unclosed {stack[-1][0].kind}")
    return root


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, buf, quoted, depth = [], "", False, 0
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and not quoted and depth == 0:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    return [p.strip() for p in parts]


_ARG = re.compile(r'"(?:[^"\\]|\\.)*"|\([^()]*\)|[^\s()]+')


def _truthy(value: Any) -> bool:
    return bool(value)


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _indent(n: int, text: str) -> str:
    pad = " " * int(n)
    return "\n".join(pad + line if line else line for line in str(text).split("\n"))


def _go_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "toYaml": _to_yaml,
    "nindent": lambda n, text: "\n" + _indent(n, text),
    "indent": _indent,
    "quote": lambda value: json.dumps(_go_str(value)),
    "default": lambda fallback, value=None: value if _truthy(value) else fallback,
    "printf": lambda fmt, *args: fmt % tuple(_go_str(a) for a in args),
    "print": lambda *args: "".join(_go_str(a) for a in args),
    "trunc": lambda n, text: str(text)[: int(n)],
    "trimSuffix": lambda suffix, text: str(text).removesuffix(suffix),
    "sha256sum": lambda text: hashlib.sha256(str(text).encode()).hexdigest(),
    "not": lambda value: not _truthy(value),
}


class Renderer:
    def __init__(self, chart_dir: Path, values: dict[str, Any], release: str = "release"):
        chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
        self.root = {
            "Values": values,
            "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
            "Chart": {
                "Name": chart["name"],
                "Version": chart["version"],
                "AppVersion": chart.get("appVersion", ""),
            },
        }
        self.defines: dict[str, list[_Node]] = {}
        self.templates: dict[str, list[_Node]] = {}
        for path in sorted((chart_dir / "templates").iterdir()):
            nodes = _parse(_lex(path.read_text()))
            for node in nodes:
                if node.kind == "define":
                    self.defines[json.loads(node.value)] = node.body
            if not path.name.startswith("_"):
                self.templates[path.name] = [n for n in nodes if n.kind != "define"]

    def render(self) -> dict[str, str]:
        return {name: self._nodes(nodes, self.root, {}) for name, nodes in self.templates.items()}

    def _nodes(self, nodes: list[_Node], dot: Any, variables: dict[str, Any]) -> str:
        out: list[str] = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.value)
            elif node.kind == "action":
                out.append(_go_str(self._pipeline(node.value, dot, variables)))
            elif node.kind == "if":
                branch = (
                    node.body
                    if _truthy(self._pipeline(node.value, dot, variables))
                    else node.orelse
                )
                out.append(self._nodes(branch, dot, variables))
            elif node.kind == "range":
                out.append(self._range(node, dot, variables))
        return "".join(out)

    def _range(self, node: _Node, dot: Any, variables: dict[str, Any]) -> str:
        match = re.fullmatch(r"\$(\w+)\s*,\s*\$(\w+)\s*:=\s*(.+)", node.value)
        if not match:
            raise TemplateError(f"unsupported range: {node.value!r}")
        collection = self._pipeline(match.group(3), dot, variables)
        items = (
            sorted(collection.items()) if isinstance(collection, dict) else enumerate(collection)
        )
        out = []
        for key, value in items:
            scope = {**variables, match.group(1): key, match.group(2): value}
            out.append(self._nodes(node.body, value, scope))
        return "".join(out)

    def _pipeline(self, text: str, dot: Any, variables: dict[str, Any]) -> Any:
        result: Any = _NO_VALUE
        for command in _split_outside_quotes(text, "|"):
            args = _ARG.findall(command)
            if not args:
                raise TemplateError(f"empty command in {text!r}")
            head, rest = args[0], [self._arg(a, dot, variables) for a in args[1:]]
            if result is not _NO_VALUE:
                rest.append(result)
            if head == "include":
                name, ctx = rest
                result = self._nodes(self.defines[name], ctx, {})
            elif head in FUNCTIONS:
                result = FUNCTIONS[head](*rest)
            elif not rest:
                result = self._arg(head, dot, variables)
            else:
                raise TemplateError(f"unknown function {head!r} in {text!r}")
        return result

    def _arg(self, token: str, dot: Any, variables: dict[str, Any]) -> Any:
        if token.startswith('"'):
            return json.loads(token)
        if token.startswith("("):
            return self._pipeline(token[1:-1], dot, variables)
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if token == ".":
            return dot
        if token.startswith("$"):
            name, _, path = token[1:].partition(".")
            base = self.root if name == "" else variables[name]
            return _lookup(base, path, token)
        if token.startswith("."):
            return _lookup(dot, token[1:], token)
        raise TemplateError(f"unsupported argument {token!r}")


_NO_VALUE = object()


def _lookup(base: Any, path: str, token: str) -> Any:
    value = base
    for part in filter(None, path.split(".")):
        if not isinstance(value, dict) or part not in value:
            raise TemplateError(f"{token}: no value at {part!r}")
        value = value[part]
    return value


def render_chart(chart_dir: Path, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every manifest the chart renders with its values.yaml (plus overrides), parsed."""
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())
    for key, value in (overrides or {}).items():
        values[key] = value
    documents: list[dict[str, Any]] = []
    for text in Renderer(chart_dir, values).render().values():
        for doc in yaml.safe_load_all(text):
            if doc:
                documents.append(doc)
    return documents
