"""Text made safe for a terminal: what input holds must not act on it.

Small and import-free, so the CLI's notes and per-delivery lines can use it
without loading the report renderers (stripectl/render.py, ~20 ms).
"""

from __future__ import annotations

# Control characters reach a terminal as themselves: ESC would start an
# escape sequence (colours, cursor moves, a new window title); bidi marks and
# overrides reorder what is shown, zero-width ones hide in it. Shown escaped
# instead: \x1b, \u202e.
_CONTROLS = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)},
    **{
        c: f"\\u{c:04x}"
        for c in (
            *(0x061C, 0x2028, 0x2029, 0xFEFF),
            *range(0x200B, 0x2010),
            *range(0x202A, 0x202F),
            *range(0x2066, 0x206A),
        )
    },
}


def printable(text: str) -> str:
    """`text` for a terminal: control characters (but tab and newline) escaped."""
    return text if text.isprintable() else text.translate(_CONTROLS)
