"""`inbox prune`: a mirror that can leave the machine without raw bodies or contact details."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, mirror_state, run, write_jsonl

EMAIL = "ada.lovelace.prune@example.com"


def _mirror(tmp_path: Path) -> tuple[Path, Path]:
    cus = f.customer("cus_prune", email=EMAIL, name="Ada Lovelace-Prune")
    events = [
        f.event("customer.created", cus, id="evt_prune_c", created=f.T0),
        *f.lifecycle("sub_prune", "cus_prune"),
    ]
    p = write_jsonl(tmp_path / "d.jsonl", envelopes(events))
    db = tmp_path / "mirror" / "m.db"
    db.parent.mkdir()
    assert run("replay-webhook", str(p), "--secret", SECRET, "--db", str(db)).exit_code == 0
    return p, db


def _files_hold(folder: Path, needle: bytes) -> list[str]:
    return [p.name for p in folder.iterdir() if needle in p.read_bytes()]


def test_prune_bodies_and_personal_data_leave_no_trace_in_the_files(tmp_path: Path) -> None:
    p, db = _mirror(tmp_path)
    assert _files_hold(db.parent, EMAIL.encode())  # before: in the bodies and in customers
    before = mirror_state(db)
    result = run("inbox", "prune", "--bodies", "--personal-data", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert counts["bodies_pruned"] == len(f.lifecycle("sub_prune", "cus_prune")) + 1
    assert counts["personal_rows_cleared"] >= 1
    assert _files_hold(db.parent, EMAIL.encode()) == []
    assert _files_hold(db.parent, b'"object": "event"') == []  # no raw body left anywhere
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM events WHERE body IS NOT NULL").fetchone()[0] == 0
        assert conn.execute("SELECT email, name FROM customers").fetchall() == [(None, None)]
        assert conn.execute(
            "SELECT count(*) FROM checkout_sessions WHERE customer_email IS NOT NULL OR url IS NOT NULL"
        ).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM events WHERE event_id IS NOT NULL").fetchone()[0] > 0
    finally:
        conn.close()
    after = mirror_state(db)
    assert after["subscriptions"] == before["subscriptions"]  # state untouched
    # A re-run still knows every delivery; the pruned ones are not exported.
    again = run("replay-webhook", str(p), "--secret", SECRET, "--db", str(db), "--json")
    summary = json.loads(again.stdout)["summary"]
    assert again.exit_code == 0 and summary["applied"] == 0 and summary["duplicate"] == summary["total"]
    exported = run("inbox", "export", "--db", str(db))
    assert exported.exit_code == 0 and exported.stdout == ""
    assert f"{summary['total']} deliveries not exported" in exported.stderr
    # Safe to re-run.
    rerun = run("inbox", "prune", "--bodies", "--db", str(db), "--json")
    assert rerun.exit_code == 0 and json.loads(rerun.stdout)["bodies_pruned"] == 0


def test_older_than_keeps_recent_bodies(tmp_path: Path) -> None:
    _, db = _mirror(tmp_path)
    result = run("inbox", "prune", "--bodies", "--older-than", str(f.T0 + 3), "--db", str(db), "--json")
    assert result.exit_code == 0
    conn = sqlite3.connect(db)
    try:
        kept = conn.execute("SELECT count(*) FROM events WHERE body IS NOT NULL").fetchone()[0]
        gone = conn.execute("SELECT count(*) FROM events WHERE body IS NULL").fetchone()[0]
    finally:
        conn.close()
    assert gone == json.loads(result.stdout)["bodies_pruned"] and gone >= 1 and kept >= 1


def test_prune_usage_errors(tmp_path: Path) -> None:
    assert run("inbox", "prune", "--db", str(tmp_path / "m.db")).exit_code == 2
    db = str(tmp_path / "m.db")
    assert run("inbox", "prune", "--personal-data", "--older-than", "2d", "--db", db).exit_code == 2
    result = run("inbox", "prune", "--bodies", "--db", str(tmp_path / "missing.db"))
    assert result.exit_code == 2 and not (tmp_path / "missing.db").exists()
