"""What the mirror can store of an event, checked before anything is written.

A value SQLite or PostgreSQL refuses (a lone surrogate, a NUL in text, a
number beyond 64 bits, a container where one value belongs, metadata nested
past any real depth) rejects one delivery at inspection (webhooks/inspect.py)
instead of failing a whole chunk's transaction.
"""

from __future__ import annotations

from typing import Any

# SQLite's INTEGER. A number outside it is also where the two JSON parsers
# differ (webhooks/json_parse.py: beyond 64 bits orjson gives a float), so
# it is refused whether it parsed as an int or as a float.
_LIMIT = 2**63
METADATA_DEPTH = 32


def encoded_again(obj: dict[str, Any]) -> str | None:
    """Check what the row builders store inside JSON text columns: metadata,
    and the items' quantity and period end. Their depth gets a fixed bound
    before anything recurses into them (where RecursionError strikes
    depends on how deep the caller's stack is), and their numbers must fit
    64 bits (webhooks/json_parse.py: beyond, the two parsers differ)."""
    todo: list[tuple[Any, int]] = []  # (value, how many containers hold it)
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        todo.extend([(value, 1) for value in metadata.values()])
    items = obj.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    for item in data if isinstance(data, list) else ():
        if isinstance(item, dict):
            quantity, period_end = item.get("quantity"), item.get("current_period_end")
            if isinstance(quantity, dict | list) or isinstance(period_end, dict | list):
                return "an item's quantity or current_period_end is not one value"
            todo.append((quantity, 0))
            todo.append((period_end, 0))
    while todo:  # a loop, not recursion
        value, depth = todo.pop()
        kind = type(value)
        if kind is int or kind is float:
            if out_of_range(value, kind):
                return f"not a 64-bit number: {str(value)[:40]}"
        elif kind is dict or kind is list:
            if depth >= METADATA_DEPTH:  # Stripe's metadata is flat strings
                return f"metadata nested deeper than {METADATA_DEPTH} levels"
            todo.extend([(child, depth + 1) for child in (value.values() if kind is dict else value)])
    return None


def bad_text(value: str | None) -> str | None:
    """Why SQLite cannot store `value` as text (a lone surrogate: valid JSON,
    not valid Unicode), or None."""
    if value is None or value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"text that is not valid Unicode: {value[:40]!r}"
    return None


def nul_text(*values: Any) -> str | None:
    """Why a text column cannot hold one of `values`: PostgreSQL's text
    cannot contain NUL (SQLite's can). Refused on both engines, so the two
    hold the same mirror; the delivery itself is still stored, as bytes."""
    for value in values:
        if type(value) is str and "\x00" in value:
            return f"text with a NUL character: {value[:40]!r}"
    return None


def unstorable(values: list[Any]) -> str | None:
    """Why the mirror values an event puts in the mirror (its row, its
    previous status) cannot be stored as they came, or None. Caught at
    inspection, one delivery is rejected; caught by SQLite, the chunk's whole
    transaction would fail. (The `events` columns are checked as they are
    set, the JSON text columns by encoded_again.)"""
    for value in values:
        kind = type(value)
        if kind is str:
            if not value.isascii():  # ASCII, nearly every value, costs no call
                problem = bad_text(value)
                if problem is not None:
                    return problem
        elif kind is int or kind is float:
            if out_of_range(value, kind):
                return f"not a 64-bit number: {str(value)[:40]}"
        elif value is not None and kind is not bool:
            return f"a {kind.__name__} where one value belongs"
    return None


def out_of_range(number: float, kind: type) -> bool:
    """Outside SQLite's INTEGER. A float must be strictly inside: orjson
    turns -2**63 - 1 into the float -2**63 (and NaN is in no range)."""
    if kind is int:
        return not -_LIMIT <= number < _LIMIT
    return not -_LIMIT < number < _LIMIT
