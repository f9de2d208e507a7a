"""Shared by the sync / reconcile / access tests: the CLI against a fake Stripe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.store import open_store
from stripectl.store.mirror import put_rows

KEY = "sk_test_stripectl_fake_0000"
runner = CliRunner()


def cli(url: str, db: Path, *args: str) -> Result:
    """Run stripectl with a fake key, against `url`, on the mirror `db`."""
    return runner.invoke(
        app, [*args, "--api-key", KEY, "--api-base", url, "--db", str(db)], catch_exceptions=False
    )


def put(db: Path, table: str, rows: list[dict[str, Any]]) -> None:
    """Write mirror rows directly (a mirror state to compare against)."""
    store = open_store(str(db))
    with store.transaction():
        put_rows(store, table, rows)
    store.close()
