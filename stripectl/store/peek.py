"""A look at a mirror file without creating, migrating or locking it.

For `stripectl config show`: it reports where the mirror is and what mode it
holds, and must not create ./stripectl.db just by being asked.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def mirror_summary(path: str) -> dict[str, Any]:
    """{"exists", "schema_version", "livemode" ("1"/"0"/None), "deliveries"}."""
    out: dict[str, Any] = {"exists": False, "schema_version": None, "livemode": None, "deliveries": None}
    if path == ":memory:" or not Path(path).is_file():
        return out
    out["exists"] = True
    try:
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        out["error"] = str(exc)
        return out
    try:
        out["schema_version"] = int(conn.execute("PRAGMA user_version").fetchone()[0])
        row = conn.execute("SELECT value FROM meta WHERE key = 'livemode'").fetchone()
        out["livemode"] = None if row is None else str(row[0])
        out["deliveries"] = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error as exc:
        out["error"] = str(exc)
    finally:
        conn.close()
    return out
