"""The refunds and charges tables, and the money columns of payment intents.

Rows are written by the replay path (webhooks/refunds.py decides what is
newer) and by the ledgered mutations (refunds create, payments capture /
cancel); this module only creates the schema and answers the reads that
look rows up by payment intent rather than by id. Standard SQL only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite_utils

    from stripectl.store.db import Store

# Columns every mirror table carries (see migrations._v1 `common`).
_COMMON = {
    "livemode": int,
    "last_event_id": str,
    "last_event_created": int,
    "last_event_type": str,
    "last_prev_status": str,
    "updated_at": int,
    "source": str,  # webhook | api | unverified
}

# Added to payment_intents: what the intent and its charges say about money.
PAYMENT_INTENT_COLUMNS = {
    "amount_capturable": int,
    "amount_received": int,
    "capture_method": str,
    "latest_charge": str,
    "canceled_at": int,
    "cancellation_reason": str,
    # Derived from the charges and refunds rows (webhooks/refunds.py):
    "amount_captured": int,
    "amount_refunded": int,
    "refund_state": str,  # none | partially_refunded | refunded | refund_failed
}


def migrate(db: sqlite_utils.Database) -> None:
    """Re-runnable: a mirror whose user_version was set back (a test does
    that to re-run an older migration) already has these tables."""
    if not db.table("refunds").exists():
        _create_tables(db)
    have = set(db.table("payment_intents").columns_dict)
    for name, kind in PAYMENT_INTENT_COLUMNS.items():
        if name not in have:
            db.table("payment_intents").add_column(name, kind)


def _create_tables(db: sqlite_utils.Database) -> None:
    db.table("refunds").create(
        {
            "id": str,
            "payment_intent": str,
            "charge": str,
            "amount": int,
            "currency": str,
            "status": str,  # pending | requires_action | succeeded | failed | canceled
            "reason": str,
            "failure_reason": str,
            "refund_ref": str,  # metadata.refund_ref: set by `refunds create`
            "metadata": str,  # JSON
            "created": int,
            "idempotency_key": str,
            **_COMMON,
        },
        pk="id",
    )
    db.table("refunds").create_index(["payment_intent"])
    db.table("refunds").create_index(["charge"])
    db.table("charges").create(
        {
            "id": str,
            "payment_intent": str,
            "amount": int,
            "amount_captured": int,
            "amount_refunded": int,
            "captured": int,
            "refunded": int,
            "currency": str,
            "status": str,
            "created": int,
            **_COMMON,
        },
        pk="id",
    )
    db.table("charges").create_index(["payment_intent"])


_WHERE_COLUMNS = {("refunds", "payment_intent"), ("refunds", "charge"), ("charges", "payment_intent")}
_CHUNK = 500


def rows_where(store: Store, table: str, column: str, values: list[str]) -> list[dict[str, Any]]:
    """Rows of `table` whose `column` is one of `values` (an indexed lookup)."""
    assert (table, column) in _WHERE_COLUMNS
    wanted = list(dict.fromkeys(v for v in values if v))
    out: list[dict[str, Any]] = []
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(part))
        out.extend(
            store.query(f"SELECT * FROM {table} WHERE {column} IN ({marks}) ORDER BY id", tuple(part))
        )
    return out


def refunds_of(store: Store, payment_intent: str) -> list[dict[str, Any]]:
    """Every mirrored refund of a payment intent, oldest first: by the refund's
    own payment_intent, or (older API versions) through its charge."""
    return store.query(
        "SELECT * FROM refunds WHERE payment_intent = ? OR charge IN "
        "(SELECT id FROM charges WHERE payment_intent = ?) "
        "ORDER BY created, id",
        (payment_intent, payment_intent),
    )


def charges_of(store: Store, payment_intent: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT * FROM charges WHERE payment_intent = ? ORDER BY created, id", (payment_intent,)
    )


def ledger_rows_for(store: Store, operations: tuple[str, ...]) -> list[dict[str, Any]]:
    """Ledger rows of these operations (the caller filters on their params)."""
    marks = ",".join("?" * len(operations))
    return store.query(
        f"SELECT * FROM idempotency_keys WHERE operation IN ({marks}) ORDER BY created_at, key",
        operations,
    )
