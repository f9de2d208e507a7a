"""A kill or Ctrl-C mid-replay leaves a consistent mirror; a re-run finishes the job."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, mirror_state, run_json, write_jsonl


def _corpus(tmp_path: Path, n_subs: int = 150) -> Path:
    events: list[dict[str, object]] = []
    for i in range(n_subs):
        events += f.lifecycle(f"sub_1Crash{i:017d}", f"cus_1Crash{i:011d}", cancel=i % 2 == 0)
    return write_jsonl(tmp_path / "big.jsonl", envelopes(events))


def _count(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=1)
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return 0


def _survivors(corpus: Path) -> list[int]:
    """Processes still running with the corpus on their command line (forked workers)."""
    deadline = time.monotonic() + 5
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if str(corpus).encode() in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_replay_is_consistent_and_rerun_completes(tmp_path: Path, sig: int) -> None:
    corpus = _corpus(tmp_path)
    total = sum(1 for _ in corpus.open())
    db = tmp_path / "m.db"
    cmd = [
        sys.executable,
        "-m",
        "stripectl",
        "replay-webhook",
        str(corpus),
        "--secret",
        SECRET,
        "--db",
        str(db),
        "--json",
        "--chunk-size",
        "50",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while _count(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    stored = _count(db)
    assert 0 < stored < total, "the kill must land mid-run"
    assert _survivors(corpus) == [], "verification workers must die with the replay"
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and b"interrupted" in err and b"Traceback" not in err
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert stored % 50 == 0  # whole chunks only: each is one transaction
    conn.close()

    code, report = run_json("replay-webhook", str(corpus), "--secret", SECRET, "--db", str(db))
    assert code == 0
    assert report["summary"]["duplicate"] == stored
    assert report["summary"]["applied"] + report["summary"]["stale"] == total - stored

    clean = tmp_path / "clean.db"
    run_json("replay-webhook", str(corpus), "--secret", SECRET, "--db", str(clean))
    assert mirror_state(db) == mirror_state(clean)
    assert json.loads(json.dumps(report["summary"]))["rejected"] == 0
