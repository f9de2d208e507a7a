"""Refund and charge webhooks in the mirror, replayed from signed deliveries."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

from tests import factories as f
from tests import factories_refunds as fr
from tests.replay_helpers import SECRET, envelopes, run, run_json, write_jsonl

PI = "pi_1RefundExample0000000001"
CH = "ch_1RefundExample0000000001"
RE = "re_1RefundExample0000000001"
RE2 = "re_1RefundExample0000000002"
T = f.T0


def replay(tmp_path: Path, events: list[dict[str, Any]], name: str = "m.db",
           *extra: str) -> tuple[int, dict[str, Any], Path]:
    db = tmp_path / name
    src = write_jsonl(tmp_path / f"{name}.jsonl", envelopes(events))
    code, report = run_json("replay-webhook", str(src), "--secret", SECRET, "--db", str(db), *extra)
    return code, report, db


def rows(db: Path, table: str, cols: str = "*") -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT {cols} FROM {table} ORDER BY id")]
    finally:
        conn.close()


def failed_refund_history() -> list[dict[str, Any]]:
    """A payment, a 500 refund that first succeeds and then fails (the bank
    returned it), in today's shapes."""
    pi = fr.payment_intent(PI, amount=1000, charge_obj={"id": CH})
    pending = fr.refund(RE, payment_intent=PI, charge=CH, amount=500, status="pending",
                        created=T + 10, refund_ref="ticket_9")
    succeeded = {**pending, "status": "succeeded"}
    failed = {**pending, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    return [
        fr.event("payment_intent.succeeded", pi, created=T),
        fr.event("refund.created", pending, created=T + 10),
        fr.event("charge.refunded", fr.charge(CH, payment_intent=PI, amount=1000,
                                              amount_refunded=500), created=T + 10),
        fr.event("refund.updated", succeeded, created=T + 11,
                 previous_attributes={"status": "pending"}),
        fr.event("charge.refund.updated", succeeded, created=T + 11,
                 previous_attributes={"status": "pending"}),
        fr.event("refund.failed", failed, created=T + 3600,
                 previous_attributes={"status": "succeeded", "failure_reason": None}),
        fr.event("charge.refund.updated", failed, created=T + 3600,
                 previous_attributes={"status": "succeeded", "failure_reason": None}),
    ]


def test_failed_refund_is_reflected_in_the_mirror(tmp_path: Path) -> None:
    code, report, db = replay(tmp_path, failed_refund_history())
    assert code == 0, report["summary"]
    assert report["summary"]["applied"] + report["summary"]["stale"] == 7
    outcomes = {(e["type"], e["outcome"]) for e in report["events"]}
    assert ("refund.failed", "applied") in outcomes
    [refund] = rows(db, "refunds")
    assert refund["status"] == "failed" and refund["failure_reason"] == "expired_or_canceled_card"
    assert refund["refund_ref"] == "ticket_9" and refund["payment_intent"] == PI
    assert refund["last_event_type"] in ("refund.failed", "charge.refund.updated")
    [pi] = rows(db, "payment_intents")
    assert pi["status"] == "succeeded"
    assert (pi["amount_captured"], pi["amount_refunded"], pi["refund_state"]) == (1000, 0, "refund_failed")

    res = run("payments", "show", PI, "--db", str(db), "--json")
    shown = json.loads(res.stdout)
    assert shown["refund_state"] == "refund_failed" and shown["amount_refunded"] == 0
    assert [(r["id"], r["status"], r["failure_reason"]) for r in shown["refunds"]] == [
        (RE, "failed", "expired_or_canceled_card")
    ]
    assert [(c["id"], c["amount_captured"], c["amount_refunded"]) for c in shown["charges"]] == [
        (CH, 1000, 500)  # the charge's last word; the failed refund gave the 500 back
    ]
    # Replaying the same deliveries again changes nothing.
    code, again, _ = replay(tmp_path, failed_refund_history())
    assert code == 0 and again["summary"]["duplicate"] == 7


def _money_state(db: Path) -> dict[str, Any]:
    return {
        "refunds": rows(db, "refunds", "id, status, amount, failure_reason, last_event_id"),
        "charges": rows(db, "charges", "id, amount_captured, amount_refunded, last_event_id"),
        "pi": rows(db, "payment_intents", "id, status, amount_captured, amount_refunded, refund_state"),
    }


def test_mirror_does_not_depend_on_delivery_order(tmp_path: Path) -> None:
    history = failed_refund_history()
    _, _, db = replay(tmp_path, history, "ordered.db")
    expected = _money_state(db)
    orders = list(itertools.islice(itertools.permutations(history), 0, 5040, 631))
    orders.append(tuple(reversed(history)))
    for n, order in enumerate(orders):
        _, _, db = replay(tmp_path, list(order), f"p{n}.db")
        assert _money_state(db) == expected, order
    # One delivery per run (across runs, not within one chunk) gives the same too.
    db = tmp_path / "single.db"
    for n, evt in enumerate(reversed(history)):
        src = write_jsonl(tmp_path / f"single{n}.jsonl", envelopes([evt]))
        run("replay-webhook", str(src), "--secret", SECRET, "--db", str(db))
    assert _money_state(db) == expected


def test_old_shapes_embedded_refunds_and_charges(tmp_path: Path) -> None:
    """Before 2022-11-15: charge.refunds is a list object, payment_intent.charges too."""
    r1 = fr.refund(RE, payment_intent=None, charge=CH, amount=300, created=T + 5)
    r2 = fr.refund(RE2, payment_intent=None, charge=CH, amount=700, created=T + 6)
    charge = fr.charge(CH, payment_intent=PI, amount=1000, amount_refunded=1000,
                       refunds=[r2, r1], shape="old")
    pi = fr.payment_intent(PI, amount=1000, shape="old",
                           charge_obj=fr.charge(CH, payment_intent=PI, amount=1000, shape="old"))
    events = [
        fr.event("payment_intent.succeeded", pi, created=T, shape="old"),
        fr.event("charge.refunded", charge, created=T + 6, shape="old"),
    ]
    code, report, db = replay(tmp_path, events)
    assert code == 0 and report["summary"]["applied"] == 2, report["events"]
    assert [(r["id"], r["charge"], r["payment_intent"], r["amount"]) for r in rows(db, "refunds")] == [
        (RE, CH, PI, 300), (RE2, CH, PI, 700)
    ]
    [ch] = rows(db, "charges")
    assert ch["amount_refunded"] == 1000 and ch["last_event_type"] == "charge.refunded"
    [row] = rows(db, "payment_intents")
    assert row["latest_charge"] == CH
    assert (row["amount_captured"], row["amount_refunded"], row["refund_state"]) == (1000, 1000, "refunded")


def test_new_shape_charge_refunded_alone_gives_the_total(tmp_path: Path) -> None:
    """2022-11-15+: charge.refunded names only amount_refunded (refunds not expanded)."""
    events = [
        fr.event("charge.refunded", fr.charge(CH, payment_intent=PI, amount=1000, amount_refunded=250),
                 created=T + 5),
    ]
    code, _, db = replay(tmp_path, events)
    assert code == 0
    assert rows(db, "refunds") == []
    [row] = rows(db, "payment_intents")  # the money is known before the intent's own events
    assert (row["amount_captured"], row["amount_refunded"], row["refund_state"]) == (
        1000, 250, "partially_refunded")
    assert row["status"] is None
    # The intent's snapshot arrives later: it fills the rest, keeps the money.
    pi = fr.payment_intent(PI, amount=1000, charge_obj={"id": CH})
    code, _, db = replay(tmp_path, [fr.event("payment_intent.succeeded", pi, created=T)])
    [row] = rows(db, "payment_intents")
    assert row["status"] == "succeeded" and row["amount_refunded"] == 250


def test_amount_capturable_updated(tmp_path: Path) -> None:
    pi = fr.payment_intent(PI, amount=1000, status="requires_capture", capture_method="manual",
                           amount_capturable=1000)
    code, report, db = replay(tmp_path, [fr.event("payment_intent.amount_capturable_updated", pi,
                                                  created=T)])
    assert code == 0 and report["events"][0]["outcome"] == "applied"
    [row] = rows(db, "payment_intents")
    assert (row["status"], row["amount_capturable"], row["capture_method"]) == (
        "requires_capture", 1000, "manual")
    assert row["refund_state"] == "none" and row["amount_captured"] == 0


def test_hostile_refund_payloads_are_malformed_not_a_crash(tmp_path: Path) -> None:
    big = fr.refund(RE, payment_intent=PI, charge=CH, amount=2**70)
    embedded = fr.charge(CH, payment_intent=PI, amount=1000, amount_refunded=10, shape="old",
                         refunds=[{**fr.refund(RE2, payment_intent=PI, charge=CH, amount=10),
                                   "amount": "ten"}])
    listy = {**fr.refund(RE, payment_intent=PI, charge=CH, amount=5), "metadata": {"a": [1]}}
    events = [
        fr.event("refund.created", big, created=T),
        fr.event("charge.refunded", embedded, created=T + 1, shape="old"),
        fr.event("refund.updated", listy, created=T + 2),
    ]
    code, report, db = replay(tmp_path, events)
    assert code == 1
    assert [(e["outcome"], e["reason"]) for e in report["events"]] == [("rejected", "malformed")] * 3
    assert rows(db, "refunds") == [] and rows(db, "charges") == []


def test_webhook_refines_the_api_snapshot_of_refunds_create(tmp_path: Path) -> None:
    """refunds create stores its answer (source api); the webhook of the same
    second is newer, and the ledger's key stays on the row."""
    from stripectl.services.payments import record_api_snapshot
    from stripectl.store import open_store
    from stripectl.webhooks.refunds import refund_row

    db = tmp_path / "m.db"
    store = open_store(str(db))
    obj = fr.refund(RE, payment_intent=PI, charge=CH, amount=500, status="pending", created=T)
    with store.transaction():
        record_api_snapshot(store, "refunds", {**refund_row(obj), "idempotency_key": "stripectl:re:x",
                                               "source": "api", "last_event_created": T,
                                               "last_event_id": "api:stripectl:re:x"})
    store.close()
    done = {**obj, "status": "succeeded"}
    code, _, _ = replay(tmp_path, [fr.event("refund.updated", done, created=T,
                                            previous_attributes={"status": "pending"})])
    assert code == 0
    [row] = rows(db, "refunds")
    assert row["status"] == "succeeded" and row["source"] == "webhook"
    assert row["idempotency_key"] == "stripectl:re:x"


def test_replay_report_lists_the_payment_and_its_refunds(tmp_path: Path) -> None:
    code, report, _ = replay(tmp_path, failed_refund_history())
    assert code == 0
    [payment] = report["payments"]
    assert payment["id"] == PI and payment["refund_state"] == "refund_failed"
    assert payment["amount_captured"] == 1000 and payment["amount_refunded"] == 0
    assert payment["refunds"] == [{"id": RE, "status": "failed", "amount": 500,
                                   "reason": "requested_by_customer",
                                   "failure_reason": "expired_or_canceled_card",
                                   "refund_ref": "ticket_9", "charge": CH}]
    src = write_jsonl(tmp_path / "again.jsonl", envelopes(failed_refund_history()))
    res = run("replay-webhook", str(src), "--secret", SECRET, "--db", str(tmp_path / "t.db"))
    assert "Payments" in res.stdout and "expired_or_canceled_card" in res.stdout
    # A re-run (all duplicates) still names the payment.
    code, again, _ = replay(tmp_path, failed_refund_history())
    assert [p["id"] for p in again["payments"]] == [PI]


def test_money_events_survive_the_worker_processes_trip() -> None:
    """Large inputs are inspected in worker processes and come back as marshal data."""
    from stripectl.services import parallel
    from stripectl.webhooks.delivery import Delivery
    from stripectl.webhooks.inspect import inspect

    evt = failed_refund_history()[2]  # charge.refunded
    env = envelopes([evt])[0]
    delivery = Delivery(source="x:1", body=env["body"].encode(), headers=env["headers"],
                        received_at=env["received_at"])
    ins = inspect(delivery, secrets=[SECRET], tolerance=300, max_body_bytes=1 << 20)
    assert ins.reason is None and ins.table == "charges"
    [back] = parallel._unpacked(parallel._packed([ins]))
    assert back.row == ins.row and back.table == "charges"


def test_a_live_refund_event_makes_a_live_row(tmp_path: Path) -> None:
    """A Refund object has no livemode field: the event's is the refund's."""
    obj = fr.refund(RE, payment_intent=PI, charge=CH, amount=100)
    assert "livemode" not in obj
    code, report, db = replay(tmp_path, [fr.event("refund.created", obj, created=T, livemode=True)])
    assert code == 0 and report["events"][0]["outcome"] == "applied"
    [row] = rows(db, "refunds")
    assert row["livemode"] == 1
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'livemode'").fetchone() == ("1",)


def test_history_rows_of_a_payments_refunds(tmp_path: Path) -> None:
    """What `history pi_...` shows in its refunds section (services/history_refunds.py)."""
    from stripectl.services.history_refunds import refund_rows
    from stripectl.store import open_store

    _, _, db = replay(tmp_path, failed_refund_history())
    store = open_store(str(db))
    try:
        got = refund_rows(store, [PI, "pi_nothing"])
    finally:
        store.close()
    assert [(r["id"], r["status"], r["amount"]) for r in got] == [
        (RE, "failed", 500), (None, "refund_failed", 0)
    ]
    assert got[0]["failure_reason"] == "expired_or_canceled_card" and got[1]["captured"] == 1000
    assert got[0]["amount_display"] == "5.00 USD"
    assert got[1]["amount_display"] == "refunded 0.00 USD of 10.00 USD"


def test_chunk_boundaries_do_not_change_the_money(tmp_path: Path) -> None:
    """One run, chunks of 1..n deliveries (flushed rows read back from SQLite,
    this chunk's changes from the overlay), and a dry run: the same mirror."""
    from stripectl.services.replay import ReplayOptions
    from stripectl.services.replay import replay as replay_service
    from stripectl.store import open_store
    from stripectl.webhooks.delivery import Delivery

    history = list(reversed(failed_refund_history()))
    _, _, db = replay(tmp_path, failed_refund_history(), "ordered.db")
    expected = _money_state(db)
    deliveries = [
        Delivery(source=f"x:{n}", body=e["body"].encode(), headers=e["headers"],
                 received_at=e["received_at"])
        for n, e in enumerate(envelopes(history))
    ]
    for size in (1, 2, 3, len(deliveries)):
        path = tmp_path / f"chunk{size}.db"
        store = open_store(str(path))
        try:
            report = replay_service(store, deliveries, ReplayOptions(secrets=[SECRET]), chunk_size=size)
        finally:
            store.close()
        assert _money_state(path) == expected, size
        assert [p["refund_state"] for p in report.payments] == ["refund_failed"]
    store = open_store(str(tmp_path / "dry.db"), dry_run=True)
    try:
        report = replay_service(store, deliveries, ReplayOptions(secrets=[SECRET], dry_run=True))
    finally:
        store.close()
    assert not (tmp_path / "dry.db").exists()
    [payment] = report.payments
    assert (payment["amount_refunded"], payment["refund_state"]) == (0, "refund_failed")


def test_refund_metadata_that_looks_like_a_key_is_masked(tmp_path: Path) -> None:
    obj = fr.refund(RE, payment_intent=PI, charge=CH, amount=100)
    obj["metadata"] = {"note": "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "refund_ref": "t1"}
    code, _, db = replay(tmp_path, [fr.event("refund.created", obj, created=T)])
    assert code == 0
    [row] = rows(db, "refunds")
    assert "4eC39HqLyjWDarjtT1zdp7dc" not in row["metadata"] and row["refund_ref"] == "t1"


def test_handled_types_are_what_table_for_maps() -> None:
    from stripectl.webhooks.facts import HANDLED, table_for

    for t in ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated",
              "charge.refunded", "payment_intent.amount_capturable_updated"):
        assert t in HANDLED and table_for(t) is not None
    assert table_for("charge.dispute.created") is None and "charge.succeeded" not in HANDLED


def test_the_refunds_migration_runs_again_harmlessly(tmp_path: Path) -> None:
    from stripectl.store import SCHEMA_VERSION, open_store
    from stripectl.store.db import MIGRATIONS

    _, _, db = replay(tmp_path, failed_refund_history())
    conn = sqlite3.connect(db)
    # Back to before the refunds migration (not "the last one": later ones exist).
    before_refunds = [m.__name__ for m in MIGRATIONS].index("_v5")
    conn.execute(f"PRAGMA user_version = {before_refunds}")
    conn.commit()
    conn.close()
    open_store(str(db)).close()
    assert [r["status"] for r in rows(db, "refunds")] == ["failed"]
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
