"""Faults outside the receiver (issue 11, section 3): a full disk after the charge,
a corrupted page, file modes, a newer schema, secrets in URLs and metadata."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stripectl.cli.app import app
from tests.fakes.base import Request
from tests.fakes.idempotent import Fake, conn_args, ledger_rows

runner = CliRunner()
PAY = [
    "payments", "create", "--amount", "1050", "--currency", "usd", "--order-ref", "ord_full",
    "--payment-method", "pm_card_visa", "--confirm",
]


# --- a disk that fills up between the charge and the ledger commit -------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs of its own, so the test can really fill a filesystem."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> None:
    """Write until the filesystem says ENOSPC."""
    block = b"\0" * (1 << 20)
    with open(folder / "filler", "wb") as f:  # noqa: PTH123
        while True:
            try:
                f.write(block)
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    # The last partial write may have left a few free bytes: take them too.
    with contextlib.suppress(OSError), open(folder / "filler2", "wb") as g:  # noqa: PTH123
        for _ in range(1 << 16):
            g.write(b"\0" * 512)
            g.flush()


def test_charge_made_but_ledger_commit_fails_prints_id_and_replay_hint(
    fake: Fake, small_disk: Path
) -> None:
    app_, url = fake
    db = small_disk / "m.db"
    def disk_full(req: Request) -> None:
        fill(small_disk)

    app_.on_execute = disk_full
    # A process of its own, as in real life: its lease dies with it.
    res = subprocess.run([sys.executable, "-m", "stripectl", *PAY, *conn_args(url, db)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 6, res.stderr
    [pi] = app_.created("pi_")
    assert pi["status"] == "succeeded"
    assert pi["id"] in res.stderr
    assert "re-run the same command" in res.stderr and "replays" in res.stderr
    assert "Traceback" not in res.stderr

    # Room again: the same command replays the same intent, no second charge.
    (small_disk / "filler").unlink()
    (small_disk / "filler2").unlink(missing_ok=True)
    app_.on_execute = None
    again = runner.invoke(app, [*PAY, *conn_args(url, db), "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["id"] == pi["id"] and data["replayed"] is True
    assert len(app_.created("pi_")) == 1
    [row] = ledger_rows(db)
    assert row["state"] == "succeeded" and row["object_id"] == pi["id"]
