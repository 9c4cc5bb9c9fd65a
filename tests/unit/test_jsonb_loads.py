"""The lean reads' jsonb loader (syncd/api/lean/pg_rows.py) gives json.loads' value, and
its error, for any text: PostgreSQL's jsonb output and anything else."""

from __future__ import annotations

import json

import pytest

from syncd.api.lean.pg_rows import jsonb_loads

TEXTS = [
    '{"downloads": [], "a": {"b": [1, 2.5, -3e10, null, true, false]}}',
    '{"name": "caf\u00e9 \u2603 \U0001f600", "esc": "a\\"b\\\\c\\n\\u00e9\\ud83d\\ude00"}',
    "[]",
    "{}",
    '"text"',
    "12345678901234567890",
    "1.0",
    "null",
    '  {"a": 1}',  # whitespace around: json.loads' own path
    '{"a": 1}  \n',
    '{"a": NaN, "b": Infinity}',
    '{"a": 1, "a": 2}',
    '"\\ud800"',  # a lone surrogate escaped
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_value_is_json_loads(text: str) -> None:
    data = text.encode("utf-8")
    got, want = jsonb_loads(data), json.loads(data)
    assert json.dumps(got) == json.dumps(want) and type(got) is type(want)


@pytest.mark.parametrize("text", ['{"a": 1} x', "", "{", '{"a": }', "\ufeff{}"])
def test_invalid_text_fails_as_json_loads_does(text: str) -> None:
    data = text.encode("utf-8")
    try:
        json.loads(data)
    except json.JSONDecodeError as error:
        with pytest.raises(json.JSONDecodeError) as raised:
            jsonb_loads(data)
        assert str(raised.value) == str(error)
    else:  # the BOM: json.loads of bytes reads it as utf-8-sig
        assert jsonb_loads(data) == json.loads(data)
