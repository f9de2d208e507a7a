"""The `events` table: every delivery, exactly as received, with its outcome."""

from __future__ import annotations

from typing import Any, NamedTuple

from stripectl.store.db import Store

_CHUNK = 500


class EventRow(NamedTuple):
    """One `events` row, in column order (headers as JSON text, body raw bytes).

    The column order; callers may pass plain tuples in this order."""

    delivery_id: str
    event_id: str | None
    type: str | None
    created: int | None
    livemode: int | None
    object_id: str | None
    api_version: str | None
    source: str
    received_at: int | None
    headers: str
    body: bytes
    verified: int
    outcome: str
    reason: str | None
    note: str | None
    run_id: str
    stored_at: int




def insert_events(store: Store, rows: list[EventRow] | list[tuple[Any, ...]]) -> None:
    """Store deliveries (call inside `store.transaction()`).

    Raw executemany instead of sqlite-utils insert_all: every delivery is a row
    here, and insert_all's per-row dict rebuilding and JSON checks cost more
    than the insert itself on the replay benchmark.
    A row for a delivery_id already present replaces it: that only happens when
    a previously rejected delivery passes on a re-run (e.g. the right secret).
    """
    if rows:
        # Engine-specific: INSERT OR REPLACE on SQLite, ON CONFLICT on PostgreSQL.
        sql = _upserts.get(store.dialect)
        if sql is None:
            sql = _upserts[store.dialect] = store.engine.replace_sql(
                "events", EventRow._fields, "delivery_id"
            )
        store.executemany(sql, rows)


_upserts: dict[str, str] = {}


def _in_chunks(store: Store, sql: str, ids: list[str]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _CHUNK):
        part = unique[start : start + _CHUNK]
        out.extend(store.execute(sql.format(marks=",".join("?" * len(part))), part).fetchall())
    return out


def any_events(store: Store) -> bool:
    return store.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None


def known_deliveries(store: Store, delivery_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """delivery_id -> (outcome, reason) for deliveries already stored."""
    rows = _in_chunks(
        store,
        "SELECT delivery_id, outcome, reason FROM events WHERE delivery_id IN ({marks})",
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
        for r in store.execute("SELECT outcome, count(*) FROM events GROUP BY outcome")
    }
