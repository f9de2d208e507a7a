"""The one parser for JSON that arrives: envelope files, JSONL lines, event bodies.

orjson parses first; whatever it refuses goes to the stdlib `json.loads`.
So what parses, what it parses to and how an error reads are what
`json.loads` alone gave (tests/test_json_parse.py compares the two), but
for two documented differences:

- orjson refuses some input stdlib accepts: NaN and Infinity, numbers that
  overflow a double, and lone-surrogate escapes (which the envelopes use on
  purpose: a non-UTF-8 body is saved with surrogateescape). Those reach
  `json.loads` and parse as before.
- Values: an integer beyond 64 bits is a float from orjson, an int from
  json. Stripe sends none (its amounts and timestamps are 64-bit), and
  inspect.py refuses a number beyond 64 bits, int or float, wherever the
  mirror keeps it, and takes only strings as ids: the difference cannot
  reach the mirror.
- Depth: orjson reads up to 1,024 levels of nesting; json.loads stopped
  near the interpreter's recursion limit (~1,000, fewer when called deeper:
  the same input could parse or not). Now a document parses if orjson reads
  it, or if json.loads does and it nests no deeper than FALLBACK_DEPTH:
  fixed bounds. What walks parsed values again bounds their depth first
  (metadata and items in storable.encoded_again, headers and re-encoded
  bodies in envelope.py with `too_deep`), so no outcome depends on the
  caller's stack.

Why orjson at all: json.loads was ~55% of a worker's time in the replay
benchmark (envelope 7.3 us + body 11.8 us against 1.2 + 4.8 us with orjson,
~3 KB bodies); README.md's Performance section has the end-to-end figures.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

FALLBACK_DEPTH = 512  # well inside what json.loads reaches from any caller here


def too_deep(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` levels of lists and dicts
    (`"x"` is 0 levels, `{"a": "x"}` 1, `[[[]]]` 3). A loop, not recursion,
    so it answers for any depth orjson produces."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            return False
        level = []
        for item in containers:
            level.extend(item.values() if isinstance(item, dict) else item)
    return True


def loads(data: bytes | str) -> Any:
    """`json.loads(data)`, for `bytes` as UTF-8 (never UTF-16/32 guessed).

    Raises what `json.loads` raises (json.JSONDecodeError, ValueError; a
    document too deep for either parser is a ValueError), or
    UnicodeDecodeError for bytes that are not UTF-8.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    # The error path, or input only stdlib accepts: it decides, as it did
    # before orjson was used.
    deeper = f"nested deeper than {FALLBACK_DEPTH} levels"
    try:
        value = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except RecursionError:  # how deep that is depends on the stack: one message
        raise ValueError(deeper) from None
    if too_deep(value, FALLBACK_DEPTH):
        raise ValueError(deeper)
    return value
