"""`events.body`: TEXT when the raw bytes are valid UTF-8, BLOB otherwise.

As a BLOB, Datasette showed "<Binary>" and `json_extract(body, ...)` failed
(SQLite 3.45+ reads a BLOB given to a JSON function as JSONB; older versions
refuse it). Every byte is kept either way.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from stripectl.services.replay import ReplayOptions, replay
from stripectl.store import open_store
from stripectl.store.inbox import iter_deliveries
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run, write_jsonl

BODY_MIGRATION = 4  # store/migrations.py _v4: events.body as TEXT


def _bodies(db: Path) -> list[tuple[str, object]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT typeof(body), body FROM events ORDER BY source").fetchall()
    finally:
        conn.close()


def _replayed(tmp_path: Path) -> tuple[Path, list[bytes]]:
    events = [
        f.event(
            "customer.created", f.customer("cus_txt1", name="Zoë Ünïcødé 日本"), id="evt_txt1", created=f.T0
        ),
        f.event("customer.created", f.customer("cus_txt2"), id="evt_txt2", created=f.T0 + 1),
    ]
    # Exactly the bytes Stripe sent: raw non-ASCII characters, odd spacing.
    envs = [
        f.envelope(json.dumps(events[0], ensure_ascii=False), SECRET, t=f.T0, received_at=f.T0 + 2),
        f.envelope(json.dumps(events[1], indent=1), SECRET, t=f.T0 + 1, received_at=f.T0 + 3),
    ]
    p = write_jsonl(tmp_path / "d.jsonl", envs)
    with p.open("a") as fh:  # a body that is not UTF-8: kept as bytes, rejected
        fh.write(json.dumps({"received_at": f.T0, "headers": {}, "body": "\udcff\udcfe{}"}) + "\n")
    db = tmp_path / "m.db"
    assert run("replay-webhook", str(p), "--secret", SECRET, "--db", str(db)).exit_code == 1
    return db, [e["body"].encode() for e in envs] + [b"\xff\xfe{}"]


def test_utf8_bodies_are_text_and_round_trip_exactly(tmp_path: Path) -> None:
    db, sent = _replayed(tmp_path)
    stored = _bodies(db)
    assert [t for t, _ in stored] == ["text", "text", "blob"]
    assert [b.encode() if isinstance(b, str) else b for _, b in stored] == sent
    store = open_store(str(db))
    try:
        assert sorted(d.body for d in iter_deliveries(store)) == sorted(sent)
    finally:
        store.close()


def test_json_extract_works_on_stored_bodies(tmp_path: Path) -> None:
    db, _ = _replayed(tmp_path)
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT json_extract(body, '$.id'), json_extract(body, '$.data.object.name') "
            "FROM events WHERE typeof(body) = 'text' ORDER BY 1"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [("evt_txt1", "Zoë Ünïcødé 日本"), ("evt_txt2", "Jenny Rosen")]


def test_a_body_with_a_nul_byte_round_trips(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "m.db"))
    body = b'{"id": "evt_nul", "x": "a\x00b"}'
    try:
        replay(store, [Delivery(source="t", body=body)], ReplayOptions(secrets=[SECRET]), now=f.T0)
        assert [d.body for d in iter_deliveries(store)] == [body]
    finally:
        store.close()


def test_an_existing_mirror_is_migrated_to_text_bodies(tmp_path: Path) -> None:
    db, sent = _replayed(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE events SET body = CAST(body AS BLOB)")  # as stripectl 0.1 stored them
    # Back to before migration 4 (events.body as text); the later ones re-run harmlessly.
    conn.execute(f"PRAGMA user_version = {BODY_MIGRATION - 1}")
    conn.commit()
    assert {t for t, _ in conn.execute("SELECT typeof(body), 1 FROM events")} == {"blob"}
    conn.close()
    open_store(str(db)).close()
    stored = _bodies(db)
    assert [t for t, _ in stored] == ["text", "text", "blob"]
    assert [b.encode() if isinstance(b, str) else b for _, b in stored] == sent
    # ... and a re-run still sees every delivery as already stored.
    result = run("replay-webhook", str(tmp_path / "d.jsonl"), "--secret", SECRET, "--db", str(db), "--json")
    summary = json.loads(result.stdout)["summary"]
    assert summary["applied"] == 0 and summary["duplicate"] >= 2


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_parallel_replay_stores_text_too(tmp_path: Path, jobs: str) -> None:
    events = [
        f.event("customer.created", f.customer(f"cus_par{i}"), id=f"evt_par{i}", created=f.T0 + i)
        for i in range(1500)
    ]
    p = write_jsonl(tmp_path / "d.jsonl", envelopes(events))
    db = tmp_path / "m.db"
    assert run("replay-webhook", str(p), "--secret", SECRET, "--db", str(db), "--jobs", jobs).exit_code == 0
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT DISTINCT typeof(body) FROM events").fetchall() == [("text",)]
    finally:
        conn.close()
