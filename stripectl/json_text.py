"""JSON text written by hand where the encoder's per-call setup dominates.

`json.JSONEncoder.encode` builds a C encoder on every call (~2 us); a
100,000-event replay report paid that once per event, all of it at the very
end of the run when nothing else is left to do. The helpers here produce
exactly what `json.dumps` produces with its default settings (", " and ": "
separators, ASCII escapes), which tests/test_json_text.py checks.
"""

from __future__ import annotations

from json.encoder import encode_basestring_ascii


class JSONText(str):
    """Already-encoded JSON: written as it is by the JSON stream writer."""

    __slots__ = ()


def string_or_null(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def int_or_null(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def boolean(value: bool) -> str:
    return "true" if value else "false"
