"""JSON text written by hand where the encoder's per-call setup dominates.

`json.JSONEncoder.encode` builds a C encoder on every call (~2 us); a
100,000-event replay report paid that once per event, all of it at the very
end of the run when nothing else is left to do. The helpers here produce
exactly what `json.dumps` produces with its default settings (", " and ": "
separators, ASCII escapes), which tests/test_json_text.py checks.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from json import JSONEncoder
from json.encoder import encode_basestring_ascii
from typing import Any

import orjson

# One encoder, reused: json.dumps(..., sort_keys=True) builds a new encoder per
# call, ~3 us of the ~40 us a replayed delivery costs a worker.
_CANONICAL = JSONEncoder(sort_keys=True, separators=(",", ":"))
_PLAIN = frozenset({str, int, bool, type(None)})  # exact types: a subclass may encode otherwise


def _flat(value: Any) -> bool:
    """A dict of plain values, or a list of such dicts (checked in C: map/issuperset)."""
    if type(value) is dict:
        return _PLAIN.issuperset(map(type, value.values()))
    return type(value) is list and all(
        type(d) is dict and _PLAIN.issuperset(map(type, d.values())) for d in value
    )


def canonical(value: Any) -> str:
    """`json.dumps(value, sort_keys=True, separators=(",", ":"))`, exactly.

    The mirror's JSON columns (items, metadata) are compared as text, so the
    text must not depend on which encoder wrote it. orjson writes the same
    bytes for a flat dict, or a list of flat dicts, of strings, integers,
    booleans and nulls when its output is ASCII without DEL (no escapes to
    differ on; tests/test_json_text.py checks it), several times faster: the
    stdlib encoder was a fifth of the CPU of a sync of 100,000
    subscriptions at 100 req/s. Anything else (floats, nesting, non-ASCII
    text, integers beyond 64 bits) goes to the stdlib encoder.
    """
    if _flat(value):
        try:
            out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
            return _CANONICAL.encode(value)
        if out.isascii() and b"\x7f" not in out:  # json escapes DEL, orjson does not
            return out.decode("ascii")
    return _CANONICAL.encode(value)


def string_or_null(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def int_or_null(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def boolean(value: bool) -> str:
    return "true" if value else "false"


class JSONArraySpool:
    """The items of a JSON array, written to a temporary file as they come, so
    a 100k-event report costs disk, not memory. Text is written as given:
    callers redact it first (stdout is never redacted again, block by block,
    because a block boundary could split a secret)."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (see close)
        self.empty = True

    def write_items(self, joined: str) -> None:
        """Items already joined with ",\n  "."""
        if joined:
            self.file.write(("\n  " if self.empty else ",\n  ") + joined)
            self.empty = False

    def blocks(self) -> Iterator[str]:
        self.file.seek(0)
        while block := self.file.read(1 << 20):
            yield block

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> JSONArraySpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
