"""stripectl's JSON parser (orjson, then stdlib) against `json.loads` itself."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stripectl.webhooks.json_parse import loads, too_deep

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Keys and strings with escapes, non-ASCII, astral characters (surrogate
# pairs once escaped) and control characters.
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
VALUES = st.recursive(
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=30,
)
DUMPS = st.sampled_from(
    [
        lambda v: json.dumps(v),
        lambda v: json.dumps(v, ensure_ascii=False),
        lambda v: json.dumps(v, indent=2),
        lambda v: json.dumps(v, separators=(",", ":")),
    ]
)


def _outcome(fn: Any, data: bytes | str) -> tuple[str, str]:
    """What a parser gives, with types: repr distinguishes 1 from 1.0 and
    shows every float's exact value and every dict's key order."""
    try:
        return "ok", repr(fn(data))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        return "error", f"{type(exc).__name__}: {exc}"


def _stdlib(data: bytes | str) -> Any:
    return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)


def _beyond_64_bits_as_float(value: Any) -> Any:
    """The one documented difference, applied to stdlib's result."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, list):
        return [_beyond_64_bits_as_float(v) for v in value]
    if isinstance(value, dict):
        return {k: _beyond_64_bits_as_float(v) for k, v in value.items()}
    return value


def _stdlib_documented(data: bytes | str) -> Any:
    return _beyond_64_bits_as_float(_stdlib(data))


@given(VALUES, DUMPS)
def test_json_documents_parse_to_what_json_loads_gives(value: Any, dumps: Any) -> None:
    text = dumps(value)
    assert _outcome(loads, text) == _outcome(_stdlib, text)
    assert _outcome(loads, text.encode()) == _outcome(_stdlib, text.encode())


@given(st.text(st.sampled_from(list('{}[]":,0123456789.eE+-\\u tfnrlsa\t\n\x01\ud800é😀')), max_size=40))
def test_any_text_parses_or_fails_exactly_as_json_loads(text: str) -> None:
    # Near-JSON noise: where both fail, loads raises stdlib's error and message.
    assert _outcome(loads, text) == _outcome(_stdlib_documented, text)


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "[Infinity, -Infinity]",
        "1e400",
        '"\\udc80"',  # how envelopes carry a non-UTF-8 body (surrogateescape)
        '{"a": 1, "a": 2}',
        '{"a": 1} {"b": 2}',  # "Extra data": envelope.py reads such a file as JSONL
        "\ufeff{}",
    ],
)
def test_what_orjson_refuses_or_reads_differently_is_decided_by_json_loads(text: str) -> None:
    assert _outcome(loads, text) == _outcome(_stdlib, text)


def test_an_integer_beyond_64_bits_is_the_documented_difference() -> None:
    assert json.loads("18446744073709551616") == 2**64
    assert loads("18446744073709551616") == float(2**64)
    assert loads("18446744073709551615") == 2**64 - 1  # still an int


def test_nesting_has_fixed_bounds_where_json_loads_had_the_stack() -> None:
    deep = "[" * 1010 + "]" * 1010
    with pytest.raises(RecursionError):
        json.loads(deep)
    assert isinstance(loads(deep), list)  # orjson reads up to 1,024 levels
    for text in ("[" * 1030 + "]" * 1030, "[" * 5000 + "]" * 5000):
        with pytest.raises(ValueError, match="nested deeper than 512 levels"):
            loads(text)
    # What only json.loads reads (NaN here) may nest FALLBACK_DEPTH levels,
    # whatever the depth of the caller's stack.
    assert loads("[" * 512 + "NaN" + "]" * 512) is not None
    with pytest.raises(ValueError, match="nested deeper than 512 levels"):
        loads("[" * 513 + "NaN" + "]" * 513)


def test_too_deep_counts_levels_of_lists_and_dicts() -> None:
    assert not too_deep({"a": "b"}, 1) and too_deep({"a": {"b": 1}}, 1)
    assert not too_deep([[[]]], 3) and too_deep([[[[]]]], 3)
    assert not too_deep("x", 0) and not too_deep(None, 0)
    assert too_deep(loads("[" * 1000 + "]" * 1000), 999)


def test_bytes_are_utf8_never_a_guessed_encoding() -> None:
    with pytest.raises(UnicodeDecodeError):
        loads(b'{"a": "\xff"}')
    # json.loads(bytes) would guess UTF-16 here and parse it.
    utf16 = '{"a": 1}'.encode("utf-16-le")
    assert json.loads(utf16) == {"a": 1}
    with pytest.raises((ValueError, UnicodeDecodeError)):
        loads(utf16)
