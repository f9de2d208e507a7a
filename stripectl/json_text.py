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
from json.encoder import encode_basestring_ascii


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
