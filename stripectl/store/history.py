"""The queries behind `stripectl history ID`: one object's deliveries and relatives.

Every lookup goes through an index (migration v4 in store/db.py adds the ones
the mirror lacked): events.object_id, and the customer / user_id columns of
the mirror tables. On a mirror of millions of deliveries a history reads only
its own rows (bench/history.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stripectl.store.db import Store
from stripectl.store.mirror import MIRROR_TABLES

_CHUNK = 500

DELIVERY_COLUMNS = (
    "delivery_id, event_id, type, created, livemode, object_id, source, received_at, "
    "verified, outcome, reason, note, stored_at"
)


def migrate(db: Any) -> None:
    """Indexes for history lookups (sqlite-utils Database)."""
    db.table("events").create_index(["object_id"], if_not_exists=True)
    db.table("invoices").create_index(["customer"], if_not_exists=True)
    db.table("checkout_sessions").create_index(["customer"], if_not_exists=True)
    db.table("checkout_sessions").create_index(["user_id"], if_not_exists=True)
    db.table("checkout_sessions").create_index(["client_reference_id"], if_not_exists=True)
    db.table("payment_intents").create_index(["customer"], if_not_exists=True)
    # Rejected deliveries are stored without event or object id (an unverified
    # body is not parsed): history finds them by searching their raw bodies.
    # Partial, so only rejected rows are indexed and nothing else pays for it.
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_events_rejected ON events(outcome) WHERE outcome = 'rejected'"
    )


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    wanted = list(dict.fromkeys(i for i in ids if i))
    for start in range(0, len(wanted), _CHUNK):
        yield wanted[start : start + _CHUNK]


def deliveries_for(
    store: Store, object_ids: Iterable[str], *, with_body: bool = True
) -> list[dict[str, Any]]:
    """Every stored delivery whose object is one of `object_ids`, oldest first
    (event created, then received, then stored: the order a person reads)."""
    cols = DELIVERY_COLUMNS + (", body" if with_body else "")
    out: list[dict[str, Any]] = []
    for part in _chunks(object_ids):
        marks = ",".join("?" * len(part))
        out.extend(store.query(f"SELECT {cols} FROM events WHERE object_id IN ({marks})", tuple(part)))
    out.sort(key=lambda r: (r["created"] or 0, r["received_at"] or 0, r["stored_at"] or 0, r["delivery_id"]))
    return out


def rejected_mentioning(
    store: Store, object_ids: Iterable[str], *, limit: int = 1000
) -> list[dict[str, Any]]:
    """Rejected deliveries without an object id whose raw body mentions one of
    `object_ids` (through the partial index on rejected rows, not the table)."""
    ids = list(dict.fromkeys(i for i in object_ids if i))[:50]
    if not ids:
        return []
    match = " OR ".join("instr(CAST(body AS TEXT), ?) > 0" for _ in ids)
    rows = store.query(
        f"SELECT {DELIVERY_COLUMNS} FROM events "
        f"WHERE outcome = 'rejected' AND object_id IS NULL AND ({match}) LIMIT ?",
        (*ids, limit),
    )
    return rows


def rows_where(store: Store, table: str, column: str, values: Iterable[str]) -> list[dict[str, Any]]:
    """Mirror rows of `table` whose `column` is one of `values` (indexed columns only)."""
    assert table in MIRROR_TABLES
    assert column in ("id", "customer", "subscription", "user_id", "client_reference_id")
    out: list[dict[str, Any]] = []
    for part in _chunks(values):
        marks = ",".join("?" * len(part))
        out.extend(
            store.query(f"SELECT * FROM {table} WHERE {column} IN ({marks}) ORDER BY id", tuple(part))
        )
    return out


def row(store: Store, table: str, row_id: str) -> dict[str, Any] | None:
    rows = rows_where(store, table, "id", [row_id])
    return rows[0] if rows else None
