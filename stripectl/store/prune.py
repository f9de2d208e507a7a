"""Dropping what a mirror kept but a copy of it must not carry.

A mirror that leaves the machine (an Actions cache, a bug report) should not
hold Stripe's raw webhook bodies (customer data, client secrets) nor the
customers' contact details. Pruning keeps every row and every id, outcome
and state column, so dedupe, ordering and reconcile work as before: only the
named values become NULL. SQLite leaves deleted bytes in free pages and in
the WAL, so the prune runs with secure_delete, then VACUUMs and truncates the
WAL: the bytes are gone from the files, not merely unreferenced.
"""

from __future__ import annotations

from dataclasses import dataclass

from stripectl.store.db import Store

# Contact details the mirror copies from events; nothing reads them back
# (access, reconcile and drift use ids, statuses and metadata).
PERSONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("email", "name"),
    "checkout_sessions": ("customer_email", "url"),
}


@dataclass
class PruneCounts:
    bodies: int = 0
    personal: int = 0


def prune(store: Store, *, bodies: bool, personal: bool, received_before: int | None = None) -> PruneCounts:
    """NULL the raw bodies (received before `received_before`, or all) and/or
    the contact details; then rebuild the file so the bytes are gone."""
    counts = PruneCounts()
    store.engine.scrub_begin()  # SQLite: secure_delete
    touched: list[str] = []
    with store.transaction():
        if bodies:
            if received_before is None:
                cur = store.execute("UPDATE events SET body = NULL WHERE body IS NOT NULL")
            else:
                cur = store.execute(
                    "UPDATE events SET body = NULL WHERE body IS NOT NULL "
                    "AND COALESCE(received_at, stored_at) < ?",
                    (received_before,),
                )
            counts.bodies = cur.rowcount
            if counts.bodies:
                touched.append("events")
        if personal:
            for table, columns in PERSONAL_COLUMNS.items():
                sets = ", ".join(f"{c} = NULL" for c in columns)
                where = " OR ".join(f"{c} IS NOT NULL" for c in columns)
                cur = store.execute(f"UPDATE {table} SET {sets} WHERE {where}")
                counts.personal += cur.rowcount
                if cur.rowcount:
                    touched.append(table)
    # Rewrite what held the old values (SQLite: VACUUM + WAL truncate;
    # PostgreSQL: VACUUM FULL of the touched tables).
    store.engine.scrub_end(touched)
    return counts


def pruned_bodies(store: Store) -> int:
    return int(store.execute("SELECT count(*) FROM events WHERE body IS NULL").fetchone()[0])
