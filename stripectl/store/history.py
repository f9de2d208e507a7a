"""The queries behind `stripectl history ID`: one object's deliveries and relatives.

Deliveries are found through `history_index` (ref, delivery_id): the object id of
each verified delivery, and the ids a rejected delivery's raw body mentions
(rejected ones are stored without ids: an unverified body is not parsed).
history fills it itself, catching up on the deliveries stored since its last
run (`catch_up`, rowid > the mark in meta, checked against the delivery it named),
in ref order. Not an index on
events.object_id maintained by every insert: that cost replay 12-16% (a
random-key B-tree touched by every chunk; bench/history.py prints it), while
a catch-up writes each index page about once.

The mirror tables' lookups (customer, user_id, ...) use plain indexes
(migration v5 in store/migrations.py). On a mirror of millions of deliveries a
history reads only its own rows (bench/history.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from stripectl.store.db import Store
from stripectl.store.mirror import MIRROR_TABLES

_CHUNK = 500
_CATCH_UP_BATCH = 100_000
MARK = "history_indexed_rowid"
MARK_ID = "history_indexed_delivery"

DELIVERY_COLUMNS = (
    "delivery_id, event_id, type, created, livemode, object_id, source, received_at, "
    "verified, outcome, reason, note, stored_at"
)


def migrate(db: Any) -> None:
    """Tables and indexes for history lookups (sqlite-utils Database)."""
    # WITHOUT ROWID is SQLite's clustered primary key; PostgreSQL (PgSchema) has no such clause.
    clustered = "" if type(db).__name__ == "PgSchema" else " WITHOUT ROWID"
    db.execute(
        "CREATE TABLE IF NOT EXISTS history_index (ref TEXT NOT NULL, delivery_id TEXT NOT NULL, "
        "PRIMARY KEY (ref, delivery_id))" + clustered
    )
    db.table("invoices").create_index(["customer"], if_not_exists=True)
    db.table("checkout_sessions").create_index(["customer"], if_not_exists=True)
    db.table("checkout_sessions").create_index(["user_id"], if_not_exists=True)
    db.table("checkout_sessions").create_index(["client_reference_id"], if_not_exists=True)
    db.table("payment_intents").create_index(["customer"], if_not_exists=True)


def migrate_rowid_index(db: Any) -> None:
    """Migration 7: on PostgreSQL, an index on events.rowid. The catch-up reads
    `max(rowid)`, the row at the mark and the rows past it: SQLite's rowid is
    the table's own B-tree key, PostgreSQL's stand-in column (pg_schema.py)
    had no index, so every history scanned all of `events`. Ever-growing keys
    append to the index's last page: replay's cost per row barely moves
    (README, Teams: PostgreSQL). Nothing to do on SQLite."""
    if getattr(db, "dialect", "sqlite") == "postgres":
        db.table("events").create_index(["rowid"], if_not_exists=True)


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


def _mark_holds(store: Store, mark: int) -> bool:
    """Whether the row at the mark is still the delivery indexed last: rowids of
    `events` (a TEXT primary key) move with VACUUM (inbox prune) and with
    deletes at the end; then the index is rebuilt, never trusted."""
    if mark == 0:
        return True
    row = store.execute("SELECT delivery_id FROM events WHERE rowid = ?", (mark,)).fetchone()
    return row is not None and row[0] == store.meta_get(MARK_ID)


def pending(store: Store) -> int:
    """How many stored deliveries the history index has not seen yet (all of
    them when the mark no longer holds)."""
    top = int(store.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0])
    mark = int(store.meta_get(MARK) or 0)
    return top - mark if _mark_holds(store, mark) and top >= mark else top


def catch_up(store: Store, progress: Callable[[int], None] | None = None) -> int:
    """Index the deliveries stored since the last catch-up; returns how many.

    One write transaction (rows stored meanwhile wait for the next run). A
    mark that no longer names the same delivery (VACUUM renumbered rowids,
    rows deleted from the end) means: rebuild.
    A delivery replaced by a re-run (INSERT OR REPLACE: new rowid) is indexed
    again under its new contents; its old refs only ever match through the
    join on the events row as it is now.
    """
    if pending(store) == 0:
        return 0
    done = 0
    with store.transaction() as conn:
        mark = int(store.meta_get(MARK) or 0)
        top = int(conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0])
        if top < mark or not _mark_holds(store, mark):
            conn.execute("DELETE FROM history_index")
            mark = 0
        while mark < top:
            upper = min(top, mark + _CATCH_UP_BATCH)
            pairs: list[tuple[str, str]] = []
            for delivery_id, object_id, rejected_body in conn.execute(
                "SELECT delivery_id, object_id, CASE WHEN object_id IS NULL AND outcome = 'rejected' "
                "THEN body END FROM events WHERE rowid > ? AND rowid <= ?",
                (mark, upper),
            ):
                if object_id:
                    pairs.append((object_id, delivery_id))
                elif rejected_body is not None:
                    pairs.extend((ref, delivery_id) for ref in refs_in(rejected_body))
                done += 1
            pairs.sort()  # in key order: each index page written about once
            # ON CONFLICT DO NOTHING, not INSERT OR IGNORE: both engines take it.
            conn.executemany(
                "INSERT INTO history_index (ref, delivery_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                pairs,
            )
            mark = upper
            if progress is not None:
                progress(done)
        last = conn.execute("SELECT delivery_id FROM events WHERE rowid = ?", (top,)).fetchone()
        store.meta_set(MARK, str(top))
        store.meta_set(MARK_ID, str(last[0]) if last else "")
    return done


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    wanted = list(dict.fromkeys(i for i in ids if i))
    for start in range(0, len(wanted), _CHUNK):
        yield wanted[start : start + _CHUNK]


def deliveries_for(store: Store, object_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Every stored delivery indexed under one of `object_ids` (call catch_up
    first), with its body; each row says whether it matched by its own object
    id or (rejected, id-less) by an id in its raw body."""
    cols = ", ".join(f"e.{c.strip()}" for c in DELIVERY_COLUMNS.split(","))
    out: dict[str, dict[str, Any]] = {}
    for part in _chunks(object_ids):
        marks = ",".join("?" * len(part))
        wanted = set(part)
        for r in store.query(
            f"SELECT {cols}, e.body, h.ref FROM history_index h JOIN events e "
            f"ON e.delivery_id = h.delivery_id WHERE h.ref IN ({marks})",
            tuple(part),
        ):
            ref = r.pop("ref")
            if r["object_id"] in wanted:
                r["matched"] = "object id"
            elif r["object_id"] is None and r["outcome"] == "rejected":
                r["matched"] = f"raw body mentions {ref} (unverified)"
            else:
                continue  # a ref from a replaced row's earlier contents
            out.setdefault(r["delivery_id"], r)
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
