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

from stripectl.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
# Unix seconds from 2001 on: a bare 4- or 8-digit number is far more likely a
# typo for a date than an instant in 1970.
_UNIX = re.compile(r"^\d{9,11}$")

SINCE_HELP = "2h, 30m, 7d, 2026-11-01T00:00Z or unix seconds"


def parse_since(value: str, *, now: int | None = None) -> int:
    """Unix seconds for `value`; raises UsageError with the accepted forms."""
    text = value.strip()
    current = int(time.time()) if now is None else now
    rel = _RELATIVE.match(text.lower())
    if rel:
        return current - int(rel.group(1)) * _UNITS[rel.group(2)]
    if _UNIX.match(text):
        return int(text)
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
    return int(parsed.timestamp())


def format_ts(ts: int | None) -> str:
    """`2026-11-01T00:00:00Z` for messages; `-` when unknown."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
