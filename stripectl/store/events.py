"""The `events` table: every delivery, exactly as received, with its outcome."""

from __future__ import annotations

from typing import Any, NamedTuple

from stripectl.store.db import Store

_CHUNK = 500


class EventRow(NamedTuple):
    """One `events` row, in column order (headers as JSON text, body raw bytes:
    stored as TEXT when they are valid UTF-8, see storable_body).

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


_BODY = EventRow._fields.index("body")


def storable_body(body: bytes) -> str | bytes:
    """The raw body as SQLite should hold it: TEXT when it is valid UTF-8
    (decoding and encoding again gives back every byte), so JSON functions
    and tools like Datasette read it; BLOB otherwise (SQLite 3.45+ reads a
    BLOB passed to json_extract as JSONB, older versions refuse it)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


def body_bytes(value: str | bytes | memoryview | None) -> bytes:
    """A stored body back as the exact bytes received."""
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def migrate_text_bodies(db: Any) -> None:
    """Migration 4: events.body as TEXT where the raw bytes are valid UTF-8
    (see storable_body); a body that is not stays a BLOB. In rowid batches,
    inside the migration's transaction. PostgreSQL keeps every body as
    BYTEA (exact bytes; its text cannot hold every body): nothing to do."""
    if getattr(db, "dialect", "sqlite") == "postgres":
        return
    conn = db.conn
    last = 0
    while True:
        rows = conn.execute(
            "SELECT rowid, body FROM events WHERE typeof(body) = 'blob' AND rowid > ? "
            "ORDER BY rowid LIMIT 1000",
            (last,),
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        updates = [(text, rowid) for rowid, body in rows if isinstance(text := storable_body(body), str)]
        conn.executemany("UPDATE events SET body = ? WHERE rowid = ?", updates)




def insert_events(store: Store, rows: list[EventRow] | list[tuple[Any, ...]]) -> None:
    """Store deliveries (call inside `store.transaction()`).

    Raw executemany instead of sqlite-utils insert_all: every delivery is a row
    here, and insert_all's per-row dict rebuilding and JSON checks cost more
    than the insert itself on the replay benchmark.
    A row for a delivery_id already present replaces it: that only happens when
    a previously rejected delivery passes on a re-run (e.g. the right secret).
    """
    if rows:
        if store.dialect == "sqlite":
            # TEXT when the bytes are valid UTF-8 (storable_body); PostgreSQL
            # keeps BYTEA (binding a str there would read it as bytea text).
            b = _BODY
            rows = [(*r[:b], storable_body(r[b]), *r[b + 1 :]) for r in rows]
        # Engine-specific: INSERT OR REPLACE on SQLite; on PostgreSQL ON
        # CONFLICT inside a write batch, COPY outside one (BULK_ROWS).
        store.replace_rows("events", EventRow._fields, "delivery_id", rows)


# A replay chunk of at least this many new deliveries is stored before its
# write batch, not in it: on PostgreSQL that is one COPY instead of a
# statement per row (store/engine/pg_bulk.py). Listener batches (at most 256)
# stay in their batch, one round trip with the rest of their writes.
BULK_ROWS = 500


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
