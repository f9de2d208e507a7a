"""Reconcile run history (owned by the drift-report work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def migrate(db: sqlite_utils.Database) -> None:
    db["reconcile_runs"].create(
        {
            "id": int,
            "started_at": int,
            "finished_at": int,
            "local_count": int,
            "remote_count": int,
            "drift_count": int,
            "counts": str,  # JSON {kind: n}
            "exit_code": int,
        },
        pk="id",
    )
