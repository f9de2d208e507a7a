"""The mirror's schema: its migrations, in order, written once for both engines.

Each migration gets the engine's schema builder: a sqlite_utils.Database on
SQLite, a PgSchema on PostgreSQL (the same table API; store/engine/pg_schema.py
says how). store/db.py runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# A migration gets a sqlite_utils.Database on SQLite, a PgSchema on PostgreSQL
# (the same table API).
Migration = Callable[[Any], None]


def _v1(db: Any) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("events").create(
        {
            "delivery_id": str,  # sha256 of signature header + raw body
            "event_id": str,
            "type": str,
            "created": int,
            "livemode": int,
            "object_id": str,
            "api_version": str,
            "source": str,  # file:line, api, listener
            "received_at": int,
            "headers": str,  # JSON
            "body": bytes,  # raw bytes exactly as received (TEXT if valid UTF-8: _v4)
            "verified": int,
            "outcome": str,
            "reason": str,
            "note": str,
            "run_id": str,
            "stored_at": int,
        },
        pk="delivery_id",
    )
    # Only event_id is indexed (dedupe on every replay chunk). Each extra index
    # cost ~3-4 us per stored delivery on bench/replay.py; the export queries
    # that filter on outcome/created are rare and scan.
    db.table("events").create_index(["event_id"])
    common = {
        "livemode": int,
        "last_event_id": str,
        "last_event_created": int,
        "last_event_type": str,
        "last_prev_status": str,  # previous_attributes.status: orders same-second ties
        "updated_at": int,
        "source": str,  # webhook | api | sync
    }
    db.table("subscriptions").create(
        {
            "id": str,
            "customer": str,
            "status": str,
            "status_since": int,
            "status_since_exact": int,  # 1: from the event that made the change
            "price": str,
            "quantity": int,
            "items": str,  # JSON [{price, quantity, current_period_end}]
            "current_period_end": int,
            "cancel_at_period_end": int,
            "trial_end": int,
            "canceled_at": int,
            "metadata": str,  # JSON
            "user_id": str,
            "plan_name": str,
            **common,
        },
        pk="id",
    )
    db.table("subscriptions").create_index(["customer"])
    db.table("subscriptions").create_index(["user_id"])
    db.table("customers").create(
        {"id": str, "email": str, "name": str, "metadata": str, "deleted": int, **common},
        pk="id",
    )
    db.table("invoices").create(
        {
            "id": str,
            "customer": str,
            "subscription": str,
            "status": str,
            "amount_due": int,
            "amount_paid": int,
            "currency": str,
            "attempt_count": int,
            "next_payment_attempt": int,
            "billing_reason": str,
            "action_required": int,
            "last_failure_at": int,
            **common,
        },
        pk="id",
    )
    db.table("invoices").create_index(["subscription"])
    db.table("checkout_sessions").create(
        {
            "id": str,
            "mode": str,
            "status": str,
            "payment_status": str,
            "customer": str,
            "customer_email": str,
            "client_reference_id": str,
            "user_id": str,
            "plan_name": str,
            "subscription": str,
            "payment_intent": str,
            "url": str,
            "metadata": str,
            "expires_at": int,
            "created": int,
            "idempotency_key": str,
            **common,
        },
        pk="id",
    )
    db.table("checkout_sessions").create_index(["subscription"])
    db.table("payment_intents").create(
        {
            "id": str,
            "status": str,
            "amount": int,
            "currency": str,
            "customer": str,
            "metadata": str,
            "last_error_code": str,
            "idempotency_key": str,
            **common,
        },
        pk="id",
    )


def _v2(db: Any) -> None:
    from stripectl.store import ledger

    ledger.migrate(db)


def _v3(db: Any) -> None:
    from stripectl.store import runs

    runs.migrate(db)


def _v4(db: Any) -> None:
    from stripectl.store import events

    events.migrate_text_bodies(db)


def _v5(db: Any) -> None:
    from stripectl.store import refunds

    refunds.migrate(db)


def _v6(db: Any) -> None:
    from stripectl.store import history

    history.migrate(db)


def _v7(db: Any) -> None:
    from stripectl.store import history

    history.migrate_rowid_index(db)


# Append only: a released migration is never edited.
MIGRATIONS: list[Migration] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7]
SCHEMA_VERSION = len(MIGRATIONS)
