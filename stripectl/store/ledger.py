"""The idempotency-key ledger table (owned by the money-mutations work).

One row per idempotency key that stripectl ever sent (or was about to send)
to Stripe. The use-case rules (conflicts, leases, staleness) live in
`services/ledger.py`; this module only reads and writes rows, always inside
the caller's `store.transaction()`.

States: `pending` (written before the request; outcome unknown until it
answers), `succeeded`, `failed`. A row whose `lease_owner` is set is being
sent right now by that owner, until `lease_expires_at`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stripectl.store.db import Store

TABLE = "idempotency_keys"


def migrate(db: Any) -> None:
    db.table(TABLE).create(
        {
            "key": str,
            "operation": str,  # payment_intent.create | checkout_session.create
            "fingerprint": str,  # sha256 of operation + canonical params
            "params": str,  # canonical JSON of the request params, secrets redacted
            "state": str,  # pending | succeeded | failed
            "object_id": str,
            "object_status": str,
            "error": str,  # redacted one-line message
            "error_code": str,  # decline code or Stripe error code
            "http_status": int,
            "replayed": int,  # last answer carried Idempotent-Replayed: true
            "attempts": int,  # how many times the key was handed to the SDK
            "lease_owner": str,  # host:pid:nonce of the invocation sending it now
            "lease_expires_at": int,
            "first_sent_at": int,  # Stripe may prune a key 24 h after this
            "last_sent_at": int,
            "created_at": int,
            "updated_at": int,
        },
        pk="key",
    )
    db.table(TABLE).create_index(["state"])
    db.table(TABLE).create_index(["object_id"])


def get(store: Store, key: str) -> dict[str, Any] | None:
    rows = store.query(f"SELECT * FROM {TABLE} WHERE key = ?", (key,))
    return rows[0] if rows else None


def insert(store: Store, row: dict[str, Any]) -> None:
    """Call inside `store.transaction()`."""
    store.insert(TABLE, row)


def update(store: Store, key: str, fields: dict[str, Any]) -> None:
    """Call inside `store.transaction()`."""
    store.update(TABLE, "key", key, fields)


def rows(store: Store, *, state: str | None = None) -> list[dict[str, Any]]:
    if state is None:
        return store.query(f"SELECT * FROM {TABLE} ORDER BY created_at, key")
    return store.query(
        f"SELECT * FROM {TABLE} WHERE state = ? ORDER BY created_at, key", (state,)
    )
