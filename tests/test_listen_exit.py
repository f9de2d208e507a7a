"""The listener's exit status is the README's: Ctrl-C (SIGINT) 130, SIGTERM 0.

Both finish in-flight deliveries and close the database first; a delivery
acknowledged before the signal is stored.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.listen_helpers import SECRET, customer_event, post, signed

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 0)], ids=["ctrl-c", "sigterm"]
)
def test_exit_status_on_a_signal(tmp_path: Path, sig: signal.Signals, status: int) -> None:
    db = tmp_path / "m.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stripectl", "webhook", "listen", "--port", "0", "--db", str(db),
         "--secret", SECRET, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = json.loads(proc.stdout.readline())["listening"]
        assert post(url, *signed(customer_event("x1")))[0] == 200
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == status
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped; database closed" in err and "Traceback" not in err, err
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT event_id FROM events").fetchall() == [("evt_lx1",)]
    finally:
        conn.close()
