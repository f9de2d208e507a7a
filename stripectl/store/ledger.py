"""The idempotency-key ledger (owned by the money-mutations work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def migrate(db: sqlite_utils.Database) -> None:
    db["idempotency_keys"].create(
        {
            "key": str,
            "operation": str,
            "fingerprint": str,
            "params": str,  # JSON, secrets redacted
            "state": str,  # pending | succeeded | failed
            "object_id": str,
            "error": str,
            "attempts": int,
            "created_at": int,
            "updated_at": int,
        },
        pk="key",
    )
