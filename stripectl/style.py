"""Colours for the words people scan for: one table for every command.

green: it worked (applied, granted); red: it did not (rejected, denied);
yellow: look closer (anomaly, stale). rich prints no colour when the stream
is not a terminal or NO_COLOR is set, so piped output and CI logs stay plain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

STYLES: dict[str, str] = {
    "applied": "green",
    "granted": "green",
    "yes": "green",
    "ok": "green",
    "rejected": "red",
    "denied": "red",
    "no": "red",
    "anomaly": "yellow",
    "stale": "yellow",
    "duplicate": "dim",
    "ignored": "dim",
}


def style_for(word: str) -> str:
    return STYLES.get(word.strip().lower(), "")


def styled(text: str, kind: str | None = None) -> Text:
    """`text` as a rich Text (never parsed as markup), coloured by `kind` or by itself."""
    from rich.text import Text

    return Text(text, style=style_for(kind if kind is not None else text))


_SGR = {"green": "32", "red": "31", "yellow": "33", "dim": "2"}


def colour_on(stream: object) -> bool:
    """For text written without rich (listener lines): a terminal, no NO_COLOR."""
    import os

    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def ansi(word: str) -> str:
    """`word` wrapped in its colour's escape codes (call only when colour_on)."""
    code = _SGR.get(style_for(word))
    return f"\x1b[{code}m{word}\x1b[0m" if code else word
