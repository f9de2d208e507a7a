"""The queries behind `stripectl history ID`: one object's deliveries and relatives.

Every lookup goes through an index (migration v4 in store/db.py adds the ones
the mirror lacked): events.object_id, and the customer / user_id columns of
the mirror tables. On a mirror of millions of deliveries a history reads only
its own rows (bench/history.py).
"""

from __future__ import annotations

import re
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
    # body is not parsed): the ids their raw body mentions are kept here, so
    # history finds them through an index instead of searching every body.
    db.execute(
        "CREATE TABLE IF NOT EXISTS rejected_refs (ref TEXT NOT NULL, delivery_id TEXT NOT NULL, "
        "PRIMARY KEY (ref, delivery_id))"
    )
    cur = db.execute("SELECT delivery_id, body FROM events WHERE outcome = 'rejected'")
    while batch := cur.fetchmany(1000):
        add_rejected_refs(db.conn, batch)


# The ids history can be asked about, as they appear in a JSON body.
_REF = re.compile(rb'"((?:sub|cus|in|cs_test|cs_live|pi|ch|re|si)_[A-Za-z0-9]{4,64})"')
_MAX_REFS = 64  # a forged body may carry anything: bounded work per delivery


def refs_in(body: bytes | str | None) -> list[str]:
    if not body:
        return []
    raw = body.encode() if isinstance(body, str) else bytes(body)
    out: dict[str, None] = {}
    for m in _REF.finditer(raw):
        out[m.group(1).decode("ascii")] = None
        if len(out) >= _MAX_REFS:
            break
    return list(out)


def add_rejected_refs(conn: Any, rows: Iterable[tuple[str, Any]]) -> None:
    """Index the ids in rejected deliveries' bodies ((delivery_id, body) pairs;
    inside the caller's transaction)."""
    pairs = [(ref, delivery_id) for delivery_id, body in rows for ref in refs_in(body)]
    if pairs:
        conn.executemany("INSERT OR IGNORE INTO rejected_refs (ref, delivery_id) VALUES (?, ?)", pairs)


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


def rejected_mentioning(store: Store, object_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Rejected deliveries whose raw body mentions one of `object_ids` (they
    carry no object id of their own), found through rejected_refs."""
    cols = ", ".join(f"e.{c.strip()}" for c in DELIVERY_COLUMNS.split(","))
    out: dict[str, dict[str, Any]] = {}
    for part in _chunks(object_ids):
        marks = ",".join("?" * len(part))
        for r in store.query(
            f"SELECT DISTINCT {cols} FROM rejected_refs r JOIN events e ON e.delivery_id = r.delivery_id "
            f"WHERE r.ref IN ({marks}) AND e.outcome = 'rejected' AND e.object_id IS NULL",
            tuple(part),
        ):
            out[r["delivery_id"]] = r
    return list(out.values())


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
