"""A look at a mirror without creating, migrating or locking it.

For `stripectl config show`: it reports where the mirror is and what mode it
holds, and must not create ./stripectl.db (or a server's schema) just by
being asked.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def mirror_summary(path: str, schema: str | None = None) -> dict[str, Any]:
    """{"exists", "schema_version", "livemode" ("1"/"0"/None), "deliveries"};
    `schema`: of a postgresql:// mirror."""
    out: dict[str, Any] = {"exists": False, "schema_version": None, "livemode": None, "deliveries": None}
    from stripectl.store.engine import is_url

    if is_url(path):
        return _server_summary(path, schema, out)
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


def _server_summary(url: str, schema: str | None, out: dict[str, Any]) -> dict[str, Any]:
    """The engine opened read-only (at whatever schema version: nothing is
    migrated); a server that cannot be reached is an error in the summary."""
    from stripectl.errors import StripectlError
    from stripectl.store.engine import open_engine

    try:
        engine, missing = open_engine(url, readonly=True, schema=schema)
    except StripectlError as exc:
        out["error"] = exc.message
        return out
    try:
        if missing:
            return out
        out["exists"] = True
        out["schema_version"] = engine.schema_version()
        row = engine.execute("SELECT value FROM meta WHERE key = 'livemode'").fetchone()
        out["livemode"] = None if row is None else str(row[0])
        out["deliveries"] = int(engine.execute("SELECT count(*) FROM events").fetchone()[0])
    except engine.errors as exc:
        out["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    finally:
        engine.close()
    return out
