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
- Depth: orjson reads up to 1,024 levels of nesting; json.loads stops near
  the interpreter's recursion limit (~1,000, fewer when called deeper), so
  a document in between now parses. What walks parsed values again
  (envelope.py, the snapshots via inspect.py) turns RecursionError into a
  rejection.

Why orjson at all: json.loads was ~55% of a worker's time in the replay
benchmark (envelope 7.3 us + body 11.8 us against 1.2 + 4.8 us with orjson,
~3 KB bodies); README.md's Performance section has the end-to-end figures.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """`json.loads(data)`, for `bytes` as UTF-8 (never UTF-16/32 guessed).

    Raises what `json.loads` raises (json.JSONDecodeError, RecursionError,
    ValueError), or UnicodeDecodeError for bytes that are not UTF-8.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    # The error path, or input only stdlib accepts: it decides, as it did
    # before orjson was used.
    return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
