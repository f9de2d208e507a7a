"""How many deliveries the input files hold, for a progress bar with a total.

Only asked when a bar is shown (stderr is a terminal, no --json), so piped
and CI runs never pay for it. Small files are counted exactly (one delivery
per JSONL line, one per other file); a large JSONL file is estimated from
its size and the mean line length of its first 4 MB, so the bar starts at
once even on a multi-gigabyte capture.
"""

from __future__ import annotations

from pathlib import Path

_EXACT_BYTES = 64 * 1024 * 1024
_SAMPLE_BYTES = 4 * 1024 * 1024


def _lines(path: Path) -> int:
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size <= _EXACT_BYTES:
            data = fh.read()
            return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        sample = fh.read(_SAMPLE_BYTES)
    per_line = len(sample) / max(1, sample.count(b"\n"))
    return max(1, int(size / per_line))


def expected_deliveries(paths: list[Path]) -> int | None:
    """The expected delivery count, or None when it cannot be told cheaply."""
    from stripectl.errors import StripectlError
    from stripectl.webhooks.envelope import is_jsonl, iter_files

    total = 0
    try:
        for file in iter_files(paths):
            total += _lines(file) if is_jsonl(file) else 1
    except (OSError, StripectlError):
        return None
    return total or None
