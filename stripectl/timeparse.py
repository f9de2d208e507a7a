"""Parsing `--since` values: relative ages, ISO 8601 instants, unix seconds.

Accepted: `90s`, `30m`, `2h`, `7d`, `2w` (ago, relative to `now`);
`2026-11-01`, `2026-11-01T00:00Z`, `2026-11-01T00:00:00+02:00` (a missing
offset means UTC: an operator's local clock must not shift a catch-up);
plain unix seconds `1764297600`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import NoReturn

from stripectl.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
# Unix seconds from 2001 on: a bare 4- or 8-digit number is far more likely a
# typo for a date than an instant in 1970.
_UNIX = re.compile(r"^\d{9,11}$")

SINCE_HELP = "2h, 30m, 7d, 2026-11-01T00:00Z or unix seconds"
# Instants outside 1970..9999 cannot be formatted (datetime raises OSError /
# OverflowError) and are typos anyway; the digit cap keeps int() away from
# Python's 4300-digit conversion limit.
_EARLIEST, _LATEST = 0, 253402300799  # 1970-01-01 .. 9999-12-31T23:59:59Z
_MAX_DIGITS = 12


def parse_since(value: str, *, now: int | None = None) -> int:
    """Unix seconds for `value`; raises UsageError with the accepted forms."""
    text = value.strip()
    current = int(time.time()) if now is None else now
    rel = _RELATIVE.match(text.lower())
    if rel:
        if len(rel.group(1).lstrip("0")) > _MAX_DIGITS:
            _out_of_range(value)
        return _bounded(current - int(rel.group(1)) * _UNITS[rel.group(2)], value)
    if _UNIX.match(text):
        return _bounded(int(text), value)
    iso = text.replace("z", "Z")
    if iso.endswith("Z"):
        iso = iso[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise UsageError(
            f"--since {value!r}: not a time",
            hint=f"use {SINCE_HELP}",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _bounded(int(parsed.timestamp()), value)


def _bounded(ts: int, value: str) -> int:
    if not _EARLIEST <= ts <= _LATEST:
        _out_of_range(value)
    return ts


def _out_of_range(value: str) -> NoReturn:
    raise UsageError(
        f"--since {value!r}: out of range (must fall between 1970 and 9999)",
        hint=f"use {SINCE_HELP}",
    )


def format_ts(ts: int | None) -> str:
    """`2026-11-01T00:00:00Z` for messages; `-` when unknown."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
