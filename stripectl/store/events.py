"""The `events` table: every delivery, exactly as received, with its outcome."""

from __future__ import annotations

import json
from typing import Any

from stripectl.store.db import Store

_CHUNK = 500

# Columns in insertion order; body is BLOB, headers JSON text.
_COLUMNS = (
    "delivery_id", "event_id", "type", "created", "livemode", "object_id", "api_version",
    "source", "received_at", "headers", "body", "verified", "outcome", "reason", "note",
    "run_id", "stored_at",
)
_UPSERT = (
    f"INSERT OR REPLACE INTO events ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_COLUMNS))})"
)


def insert_events(store: Store, rows: list[dict[str, Any]]) -> None:
    """Store deliveries (call inside `store.transaction()`).

    Raw sqlite3 executemany instead of sqlite-utils insert_all: bench/replay.py
    measured insert_all at several times the cost per 2.5 KB row (it rebuilds
    each dict and re-chunks), which alone would miss the replay target.
    A row for a delivery_id already present replaces it: that only happens when
    a previously rejected delivery passes on a re-run (e.g. the right secret).
    """
    if not rows:
        return
    store.conn.executemany(
        _UPSERT,
        [
            tuple(
                json.dumps(r["headers"], sort_keys=True) if c == "headers" else r.get(c)
                for c in _COLUMNS
            )
            for r in rows
        ],
    )


def _in_chunks(store: Store, sql: str, ids: list[str]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _CHUNK):
        part = unique[start : start + _CHUNK]
        out.extend(store.conn.execute(sql.format(marks=",".join("?" * len(part))), part).fetchall())
    return out


def known_deliveries(store: Store, delivery_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """delivery_id -> (outcome, reason) for deliveries already stored."""
    rows = _in_chunks(
        store, "SELECT delivery_id, outcome, reason FROM events WHERE delivery_id IN ({marks})",
        delivery_ids,
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def accepted_event_ids(store: Store, event_ids: list[str]) -> set[str]:
    """Event ids already verified and processed (anything but rejected)."""
    rows = _in_chunks(
        store,
        "SELECT DISTINCT event_id FROM events WHERE event_id IN ({marks}) AND outcome != 'rejected'",
        event_ids,
    )
    return {r[0] for r in rows}


def event_counts(store: Store) -> dict[str, int]:
    return {
        str(r[0]): int(r[1])
        for r in store.conn.execute("SELECT outcome, count(*) FROM events GROUP BY outcome")
    }
