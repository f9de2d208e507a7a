"""Reconcile run history: one row per `stripectl reconcile`, for the trend."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stripectl.store.db import Store


def migrate(db: Any) -> None:
    db.table("reconcile_runs").create(
        {
            "id": int,
            "started_at": int,  # wall clock, also the listing's snapshot time
            "finished_at": int,
            "livemode": int,
            "local_count": int,
            "remote_count": int,
            "compared": int,
            "in_sync": int,
            "skipped_newer": int,  # mirror rows newer than the listing
            "drift_count": int,  # findings after --ignore
            "drifted_subscriptions": int,
            "counts": str,  # JSON {kind: n}, after --ignore
            "ignored": str,  # JSON [kind, ...]
            "fixed": int,  # mirror rows repaired by --fix --yes
            "requests": int,  # list requests made
            "exit_code": int,
        },
        pk="id",
    )
    db.table("reconcile_runs").create_index(["started_at"])


def record_run(store: Store, run: dict[str, Any]) -> int:
    """Insert one run (call inside `store.transaction()`); returns its id."""
    row = dict(run)
    for key in ("counts", "ignored"):
        if not isinstance(row.get(key), str):
            row[key] = json.dumps(row.get(key) or ({} if key == "counts" else []), sort_keys=True)
    return int(store.insert("reconcile_runs", row, returning="id"))


def set_exit_code(store: Store, run_id: int, exit_code: int) -> None:
    """Call inside `store.transaction()`."""
    store.execute("UPDATE reconcile_runs SET exit_code = ? WHERE id = ?", (exit_code, run_id))


def recent_runs(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first, with JSON columns decoded."""
    rows = store.query(
        "SELECT * FROM reconcile_runs ORDER BY started_at DESC, id DESC LIMIT ?", (limit,)
    )
    for row in rows:
        row["counts"] = json.loads(row["counts"] or "{}")
        row["ignored"] = json.loads(row["ignored"] or "[]")
    return rows
