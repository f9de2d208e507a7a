"""Holes found in review: each test failed before its fix."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run, run_json, write_jsonl

SUB, CUS = "sub_1Review00000000000001", "cus_1Review000000001"


def _replay(tmp_path: Path, events: list[dict[str, object]], name: str, *extra: str):
    p = write_jsonl(tmp_path / name, envelopes(events))
    return run_json("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"), *extra)


def test_a_second_t_cannot_smuggle_a_fresh_timestamp(tmp_path: Path) -> None:
    evt = f.event("customer.created", f.customer("cus_old"), id="evt_old", created=f.T0)
    env = f.envelope(evt, t=f.T0)  # signed at T0
    sig = env["headers"]["Stripe-Signature"].split(",")[1]  # v1=...
    now = f.T0 + 10 * f.DAY
    for header in (f"v0=x, t={now},t={f.T0},{sig}", f"t={now},t={f.T0},{sig}"):
        forged = {"received_at": now, "headers": {"Stripe-Signature": header}, "body": env["body"]}
        p = write_jsonl(tmp_path / "forged.jsonl", [forged])
        code, report = run_json("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"))
        assert code == 1
        assert report["events"][0]["outcome"] == "rejected", header
        assert report["events"][0]["reason"] in ("garbled_signature", "expired", "bad_signature")
    assert sqlite3.connect(tmp_path / "m.db").execute("SELECT count(*) FROM customers").fetchone() == (0,)


def test_absurd_json_is_rejected_not_a_crash(tmp_path: Path) -> None:
    good = f.envelope(f.event("customer.created", f.customer("cus_ok"), id="evt_ok", created=f.T0), t=f.T0)
    huge_int = '{"received_at": 1, "headers": {}, "body": "x", "n": ' + "9" * 5000 + "}"
    nested = "[" * 100_000 + "]" * 100_000
    nan = json.dumps({**good, "received_at": float("nan")})
    signed_huge = json.dumps(f.envelope('{"id": ' + "9" * 5000 + "}", t=f.T0))
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join([huge_int, nested, nan, signed_huge, json.dumps(good)]) + "\n")
    code, report = run_json("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"))
    assert code == 1
    assert [e["outcome"] for e in report["events"]] == ["rejected"] * 4 + ["applied"]
    assert {e["reason"] for e in report["events"][:4]} == {"malformed"}


def test_status_since_does_not_depend_on_delivery_order(tmp_path: Path) -> None:
    created = f.event(
        "customer.subscription.created", f.subscription(SUB, CUS, "active"), id="evt_s1", created=f.T0
    )
    past_due = f.event(
        "customer.subscription.updated",
        f.subscription(SUB, CUS, "past_due"),
        id="evt_s2",
        created=f.T0 + 100,
        previous_attributes={"status": "active"},
    )
    later = f.event(
        "customer.subscription.updated",
        f.subscription(SUB, CUS, "past_due", metadata={"x": "1"}),
        id="evt_s3",
        created=f.T0 + 5 * f.DAY,
        previous_attributes={"metadata": {}},
    )
    results = {}
    for order in ((created, past_due, later), (created, later, past_due), (later, past_due, created)):
        d = tmp_path / "".join(e["id"][-1] for e in order)
        d.mkdir()
        for n, evt in enumerate(order):  # one run per delivery, as the listener applies them
            _replay(d, [evt], f"{n}.jsonl")
        row = (
            sqlite3.connect(d / "m.db")
            .execute("SELECT status, status_since, status_since_exact FROM subscriptions")
            .fetchone()
        )
        results[d.name] = row
    assert set(results.values()) == {("past_due", f.T0 + 100, 1)}, results


def test_a_late_failed_attempt_still_dates_the_invoice_failure(tmp_path: Path) -> None:
    failed = f.event(
        "invoice.payment_failed",
        f.invoice("in_rv1", SUB, CUS, "open", attempt_count=1, next_payment_attempt=f.T0 + 3 * f.DAY),
        id="evt_f1",
        created=f.T0,
    )
    action = f.event(
        "invoice.payment_action_required",
        f.invoice("in_rv1", SUB, CUS, "open", attempt_count=1),
        id="evt_f2",
        created=f.T0 + 60,
    )
    _replay(tmp_path, [action], "a.jsonl")
    _, report = _replay(tmp_path, [failed], "b.jsonl")
    assert report["events"][0]["outcome"] == "stale"
    row = sqlite3.connect(tmp_path / "m.db").execute("SELECT last_failure_at FROM invoices").fetchone()
    assert row == (f.T0,)


def test_an_event_beats_a_listing_of_the_same_second(tmp_path: Path) -> None:
    from stripectl.store import open_store
    from stripectl.store.mirror import put_rows
    from stripectl.webhooks.snapshots import subscription_row

    store = open_store(str(tmp_path / "m.db"))
    listed = {
        **subscription_row(f.subscription(SUB, CUS, "active")),
        "last_event_id": f"sync:{f.T0}",
        "last_event_created": f.T0,
        "source": "sync",
    }
    with store.transaction():
        put_rows(store, "subscriptions", [listed])
    store.close()
    canceled = f.event(
        "customer.subscription.updated",
        f.subscription(SUB, CUS, "canceled"),
        id="evt_0000cancel",
        created=f.T0,
        previous_attributes={"cancel_at": None},
    )
    code, report = _replay(tmp_path, [canceled], "d.jsonl")
    assert code == 0 and report["events"][0]["outcome"] == "applied"
    assert (
        report["subscriptions"][0]["status"] == "canceled" and report["subscriptions"][0]["access"] is False
    )


def test_a_failing_write_is_a_store_error_exit_6(tmp_path: Path) -> None:
    evt = f.event("customer.created", f.customer("cus_w"), id="evt_w", created=f.T0)
    _replay(tmp_path, [evt], "a.jsonl")
    conn = sqlite3.connect(tmp_path / "m.db")
    conn.execute("CREATE TRIGGER full BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    conn.commit()
    conn.close()
    p = write_jsonl(
        tmp_path / "b.jsonl",
        envelopes([f.event("customer.created", f.customer("cus_v"), id="evt_v", created=f.T0 + 1)]),
    )
    result = run("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"))
    assert result.exit_code == 6
    assert "cannot write to the mirror" in result.stderr and "Traceback" not in result.stderr


def test_same_forged_bytes_twice_in_one_run_remember_the_rejection() -> None:
    import tempfile

    from stripectl.services.replay import ReplayOptions, replay
    from stripectl.store import open_store
    from stripectl.webhooks.delivery import Delivery

    env = f.envelope(f.event("customer.created", f.customer("cus_fx"), id="evt_fx", created=f.T0), t=f.T0)
    forged = Delivery(source="l", body=env["body"].encode() + b" ", headers=env["headers"], received_at=f.T0)
    twin = Delivery(source="l", body=forged.body, headers=forged.headers, received_at=f.T0)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"{tmp}/m.db")
        report = replay(store, [forged, twin], ReplayOptions(secrets=[SECRET]))
        store.close()
    # The twin is the same finding, not a duplicate that a CI gate would pass.
    assert [(e.outcome, e.reason) for e in report.events] == [("rejected", "bad_signature")] * 2
    assert report.events[1].rejected_before == "bad_signature"
    assert report.events[1].note is not None and "already stored" in report.events[1].note


def test_two_processes_creating_one_mirror_migrate_it_once(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    for attempt in range(3):
        db = tmp_path / f"m{attempt}.db"
        start = time.time() + 1.5  # all processes open the new file at the same instant
        code = (
            "import sys, time; from stripectl.store import open_store; "
            "time.sleep(max(0, float(sys.argv[2]) - time.time())); open_store(sys.argv[1]).close()"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(db), str(start)], stderr=subprocess.PIPE)
            for _ in range(6)
        ]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] >= 3
