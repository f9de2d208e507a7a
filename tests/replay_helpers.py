"""Shared helpers for replay tests: write envelopes, run the CLI, read the mirror."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from stripectl.cli.app import app
from tests import factories as f

SECRET = f.EXAMPLE_SECRET
runner = CliRunner()

# Mirror columns that describe state (and status_since, which must not depend
# on delivery order either); updated_at and source record when/how we learned
# it and are excluded from comparisons.
STATE_COLUMNS = {
    "subscriptions": "id, customer, status, price, quantity, items, current_period_end, "
    "cancel_at_period_end, metadata, user_id, plan_name, livemode, last_event_id, last_event_created, "
    "status_since, status_since_exact",
    "invoices": "id, customer, subscription, status, attempt_count, next_payment_attempt, "
    "action_required, last_failure_at, last_event_id",
    "customers": "id, email, metadata, deleted, last_event_id",
    "checkout_sessions": "id, status, subscription, user_id, plan_name, last_event_id",
}


def envelopes(
    events: list[dict[str, Any]], secret: str = SECRET, delay: int = 2
) -> list[dict[str, Any]]:
    return [f.envelope(e, secret, t=e["created"], received_at=e["created"] + delay) for e in events]


def write_jsonl(path: Path, envs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in envs))
    return path


def run(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = run(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def store_state(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    """`mirror_state` through a Store: the same on either engine."""
    return {
        table: [tuple(r) for r in store.execute(f"SELECT {cols} FROM {table} ORDER BY id").fetchall()]
        for table, cols in STATE_COLUMNS.items()
    }


def mirror_state(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(db)
    try:
        return {
            table: conn.execute(f"SELECT {cols} FROM {table} ORDER BY id").fetchall()
            for table, cols in STATE_COLUMNS.items()
        }
    finally:
        conn.close()
