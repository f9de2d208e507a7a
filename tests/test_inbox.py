"""`inbox export`: captured deliveries back out as envelopes replay-webhook accepts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.services.listener import Listener, ListenerConfig
from stripectl.services.replay import ReplayOptions, replay
from stripectl.store import open_store
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.listen_helpers import SECRET, post, signed
from tests.replay_helpers import mirror_state

runner = CliRunner()
SUB, CUS = "sub_inbox_1", "cus_inbox_1"


def capture(db: Path) -> int:
    """Deliver a subscription lifecycle (plus junk) through a real listener."""
    events = f.lifecycle(SUB, CUS)
    lst = Listener(ListenerConfig(db_path=str(db), secrets=[SECRET], port=0))
    lst.start()
    try:
        for e in events:
            assert post(lst.url, *signed(e))[0] == 200
        assert post(lst.url, *signed(events[0], secret="whsec_stripectl_attacker_0000"))[0] == 400
        bad_utf8 = b'{"id": "evt_\xff\xfe"}'
        assert post(lst.url, bad_utf8, {"Stripe-Signature": "t=1,v1=00"})[0] == 400
    finally:
        lst.stop()
    return len(events)


def export(db: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["inbox", "export", "--db", str(db), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ids(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT delivery_id, outcome FROM events ORDER BY delivery_id"
        ).fetchall()
    finally:
        conn.close()


def test_export_round_trips_into_replay(tmp_path: Path) -> None:
    captured, again = tmp_path / "captured.db", tmp_path / "again.db"
    n = capture(captured)
    out = tmp_path / "deliveries.jsonl"

    code, stdout, _ = export(captured, "--output", str(out), "--json")
    assert code == 0 and json.loads(stdout) == {
        "exported": n + 2,
        "unsigned": 0,
        "from_api": 0,
        "output": str(out),
    }
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == n + 2 and set(lines[0]) == {"received_at", "headers", "body"}

    result = runner.invoke(
        app, ["replay-webhook", str(out), "--secret", SECRET, "--db", str(again), "--json"]
    )
    report = json.loads(result.stdout)
    assert report["summary"]["applied"] == n and report["summary"]["rejected"] == 2
    # Same bytes and signatures: same delivery ids and the same mirror. (Outcomes
    # may differ: one-by-one arrival can see a delivery as stale that a sorted
    # batch applies; newest-wins makes the final state the same.)
    assert [d for d, _ in ids(again)] == [d for d, _ in ids(captured)]
    assert [o for _, o in ids(again) if o == "rejected"] == ["rejected", "rejected"]
    assert mirror_state(again) == mirror_state(captured)


def test_export_filters_and_stdout(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    n = capture(db)
    code, stdout, _ = export(db, "--outcome", "rejected")
    assert code == 0
    rejected = [json.loads(x) for x in stdout.splitlines()]
    assert len(rejected) == 2
    applied = [d for d, o in ids(db) if o == "applied"]
    assert 0 < len(applied) <= n
    code, stdout, _ = export(db, "--outcome", "applied", "--source", "listener", "--since", "1h")
    assert code == 0 and len(stdout.splitlines()) == len(applied)
    code, stdout, _ = export(db, "--source", "api")
    assert code == 0 and stdout == ""
    code, stdout, _ = export(db, "--since", "2099-01-01")
    assert code == 0 and stdout == ""
    code, _, err = export(db, "--outcome", "bogus")
    assert code == 2 and "--outcome" in err
    code, _, err = export(tmp_path / "missing.db")
    assert code == 2 and not (tmp_path / "missing.db").exists()


def test_events_pulled_from_the_api_export_with_a_warning(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store = open_store(str(db))
    try:
        evt = f.event("customer.created", f.customer("cus_api"), id="evt_api_1", created=f.T0)
        replay(
            store,
            [
                Delivery(
                    source="api", body=json.dumps(evt).encode(), received_at=f.T0 + 5, trusted=True
                )
            ],
            ReplayOptions(secrets=[]),
            now=f.T0 + 5,
        )
    finally:
        store.close()
    code, stdout, err = export(db, "--source", "api")
    assert code == 0 and "no Stripe-Signature" in err
    env = json.loads(stdout)
    assert env["received_at"] == f.T0 + 5 and json.loads(env["body"])["id"] == "evt_api_1"
