"""replay-webhook end to end through the CLI: ordering, dedupe, state, access."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from pathlib import Path

from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, mirror_state, run, run_json, write_jsonl

SUB, CUS = "sub_1ReplayTest0000000001", "cus_1ReplayTest000001"


def _replay(tmp_path: Path, events: list[dict[str, object]], *extra: str, name: str = "d.jsonl"):
    p = write_jsonl(tmp_path / name, envelopes(events))
    return run_json(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"), *extra
    )


def _sub_row(tmp_path: Path, sub_id: str = SUB) -> dict[str, object]:
    conn = sqlite3.connect(tmp_path / "m.db")
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,)).fetchone()
    return dict(row)


def test_lifecycle_out_of_order_with_duplicates_ends_in_the_true_state(tmp_path: Path) -> None:
    events = f.lifecycle(SUB, CUS, cancel=False)
    shuffled = events + events[:4]  # re-deliveries
    random.Random(7).shuffle(shuffled)
    code, report = _replay(tmp_path, shuffled)
    assert code == 0
    assert report["summary"]["duplicate"] == 4
    assert report["summary"]["rejected"] == 0 and report["summary"]["anomaly"] == 0
    [sub] = report["subscriptions"]
    assert sub["status"] == "active" and sub["access"] is True
    assert sub["user_id"] == "user_42" and sub["plan_name"] == "basic"
    assert sub["last_event_id"] == events[-1]["id"]


def test_both_payload_shapes_give_the_same_mirror(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    _replay(tmp_path / "new", f.lifecycle(SUB, CUS, shape="new", cancel=False))
    _replay(tmp_path / "old", f.lifecycle(SUB, CUS, shape="old", cancel=False))
    new, old = _sub_row(tmp_path / "new"), _sub_row(tmp_path / "old")
    for col in ("status", "customer", "price", "quantity", "current_period_end", "user_id"):
        assert new[col] == old[col], col
    assert new["current_period_end"] is not None
    conn = sqlite3.connect(tmp_path / "old" / "m.db")
    subs = {r[0] for r in conn.execute("SELECT subscription FROM invoices")}
    assert subs == {SUB}  # invoice.subscription (old) and parent.subscription_details (new)


def test_rerun_changes_nothing_reports_duplicates_and_exits_0(tmp_path: Path) -> None:
    events = f.lifecycle(SUB, CUS)
    code1, _ = _replay(tmp_path, events)
    db = tmp_path / "m.db"
    digest = hashlib.sha256(json.dumps(mirror_state(db)).encode()).hexdigest()
    count = sqlite3.connect(db).execute("SELECT count(*) FROM events").fetchone()[0]
    code2, second = _replay(tmp_path, events)
    assert code1 == code2 == 0
    assert second["summary"]["duplicate"] == second["summary"]["total"] == len(events)
    assert hashlib.sha256(json.dumps(mirror_state(db)).encode()).hexdigest() == digest
    assert sqlite3.connect(db).execute("SELECT count(*) FROM events").fetchone()[0] == count
    assert second["subscriptions"][0]["status"] == "canceled"  # who has access, still reported


def test_stale_event_does_not_overwrite_newer_snapshot(tmp_path: Path) -> None:
    old = f.event(
        "customer.subscription.updated",
        f.subscription(SUB, CUS, "past_due"),
        id="evt_old",
        created=f.T0 + 10,
    )
    new = f.event(
        "customer.subscription.updated",
        f.subscription(SUB, CUS, "active"),
        id="evt_new",
        created=f.T0 + 20,
    )
    _replay(tmp_path, [new], name="a.jsonl")
    code, report = _replay(tmp_path, [old], name="b.jsonl")
    assert code == 0
    assert [e["outcome"] for e in report["events"]] == ["stale"]
    assert _sub_row(tmp_path)["status"] == "active"


def test_newer_event_leaving_a_terminal_status_is_an_anomaly(tmp_path: Path) -> None:
    gone = f.event(
        "customer.subscription.deleted",
        f.subscription(SUB, CUS, "canceled"),
        id="evt_gone",
        created=f.T0,
    )
    back = f.event(
        "customer.subscription.updated",
        f.subscription(SUB, CUS, "active"),
        id="evt_back",
        created=f.T0 + 5,
    )
    code, report = _replay(tmp_path, [gone, back])
    assert code == 1
    assert [(e["outcome"], e["reason"]) for e in report["events"]] == [
        ("applied", None),
        ("anomaly", "leaves_terminal:canceled->active"),
    ]
    assert _sub_row(tmp_path)["status"] == "canceled"
    stored = sqlite3.connect(tmp_path / "m.db").execute(
        "SELECT outcome FROM events WHERE event_id='evt_back'"
    )
    assert stored.fetchone() == ("anomaly",)


def test_same_second_tie_follows_the_previous_attributes_chain(tmp_path: Path) -> None:
    # Both at the same second; the ids sort the "wrong" way on purpose.
    a = f.event(
        "customer.subscription.updated",
        f.subscription(SUB, CUS, "active"),
        id="evt_zzz",
        created=f.T0,
        previous_attributes={"status": "incomplete"},
    )
    b = f.event(
        "customer.subscription.updated",
        f.subscription(SUB, CUS, "past_due"),
        id="evt_aaa",
        created=f.T0,
        previous_attributes={"status": "active"},
    )
    for order, name in (([a, b], "ab.jsonl"), ([b, a], "ba.jsonl")):
        (tmp_path / name).mkdir()
        _replay(tmp_path / name, order)
        assert _sub_row(tmp_path / name)["status"] == "past_due", name
    # And across two runs, too.
    (tmp_path / "split").mkdir()
    _replay(tmp_path / "split", [b], name="1.jsonl")
    _, report = _replay(tmp_path / "split", [a], name="2.jsonl")
    assert report["events"][0]["outcome"] == "stale"
    assert _sub_row(tmp_path / "split")["status"] == "past_due"


def test_dunning_is_recorded_and_grace_policy_decides_access(tmp_path: Path) -> None:
    retry_at = f.T0 + 3 * f.DAY
    events = [
        f.event(
            "customer.subscription.created",
            f.subscription(SUB, CUS, "active"),
            id="evt_d1",
            created=f.T0,
        ),
        f.event(
            "invoice.payment_failed",
            f.invoice("in_dun1", SUB, CUS, "open", attempt_count=1, next_payment_attempt=retry_at),
            id="evt_d2",
            created=f.T0 + 100,
        ),
        f.event(
            "customer.subscription.updated",
            f.subscription(SUB, CUS, "past_due"),
            id="evt_d3",
            created=f.T0 + 101,
            previous_attributes={"status": "active"},
        ),
    ]
    code, report = _replay(tmp_path, events)
    [sub] = report["subscriptions"]
    assert code == 0 and sub["status"] == "past_due"
    assert sub["dunning"] == {
        "invoice": "in_dun1",
        "attempt_count": 1,
        "next_payment_attempt": retry_at,
        "action_required": False,
    }
    assert sub["access"] is True  # default grace: while a retry is scheduled
    _, none = _replay(tmp_path, events, "--grace", "none")
    assert none["subscriptions"][0]["access"] is False
    # Retries exhausted: no next attempt -> no access under the default policy.
    final = f.event(
        "invoice.payment_failed",
        f.invoice("in_dun1", SUB, CUS, "open", attempt_count=4, next_payment_attempt=None),
        id="evt_d4",
        created=f.T0 + 9 * f.DAY,
    )
    _, last = _replay(tmp_path, [final], name="final.jsonl")
    assert last["subscriptions"][0]["dunning"]["attempt_count"] == 4
    assert last["subscriptions"][0]["access"] is False


def test_payment_action_required_shows_in_dunning(tmp_path: Path) -> None:
    events = [
        f.event(
            "customer.subscription.created",
            f.subscription(SUB, CUS, "past_due"),
            id="evt_a1",
            created=f.T0,
        ),
        f.event(
            "invoice.payment_action_required",
            f.invoice("in_3ds", SUB, CUS, "open", attempt_count=1),
            id="evt_a2",
            created=f.T0 + 1,
        ),
    ]
    _, report = _replay(tmp_path, events)
    assert report["subscriptions"][0]["dunning"]["action_required"] is True


def test_livemode_mismatch_is_rejected(tmp_path: Path) -> None:
    test_evt = f.event("customer.created", f.customer("cus_t"), id="evt_t", created=f.T0)
    live_evt = f.event(
        "customer.created", f.customer("cus_l", livemode=True), id="evt_l", created=f.T0 + 1
    )
    code, report = _replay(tmp_path, [test_evt, live_evt])
    assert code == 1
    assert [e["reason"] for e in report["events"]] == [None, "livemode_mismatch"]
    rows = sqlite3.connect(tmp_path / "m.db").execute("SELECT id FROM customers").fetchall()
    assert rows == [("cus_t",)]


def test_unknown_types_are_ignored_but_stored(tmp_path: Path) -> None:
    evt = f.event("charge.dispute.created", {"id": "dp_1", "object": "dispute"}, id="evt_ign",
                  created=f.T0)
    code, report = _replay(tmp_path, [evt])
    assert code == 0 and report["events"][0]["outcome"] == "ignored"
    assert sqlite3.connect(tmp_path / "m.db").execute("SELECT outcome FROM events").fetchone() == (
        "ignored",
    )


def test_checkout_completed_links_subscription_to_user_in_either_order(tmp_path: Path) -> None:
    sub = f.subscription(SUB, CUS, "active", metadata={})
    cs = f.checkout_session(
        "cs_test_link",
        "subscription",
        SUB,
        None,
        "user_77",
        {"user_id": "user_77", "plan_name": "pro"},
        "paid",
        "complete",
    )
    e_sub = f.event("customer.subscription.created", sub, id="evt_s", created=f.T0)
    e_cs = f.event("checkout.session.completed", cs, id="evt_c", created=f.T0 + 5)
    for order, name in (([e_sub, e_cs], "a"), ([e_cs, e_sub], "b")):
        (tmp_path / name).mkdir()
        _, report = _replay(tmp_path / name, order)
        row = _sub_row(tmp_path / name)
        assert (row["user_id"], row["plan_name"]) == ("user_77", "pro"), name
        assert report["subscriptions"][0]["user_id"] == "user_77"


def test_dry_run_touches_nothing(tmp_path: Path) -> None:
    code, report = _replay(tmp_path, f.lifecycle(SUB, CUS), "--dry-run")
    assert code == 0 and report["dry_run"] is True
    assert report["subscriptions"][0]["status"] == "canceled"
    assert not (tmp_path / "m.db").exists()
    # On an existing mirror: simulated, file unchanged.
    _replay(tmp_path, f.lifecycle(SUB, CUS, cancel=False), name="first.jsonl")
    before = (tmp_path / "m.db").read_bytes()
    _, sim = _replay(tmp_path, f.lifecycle(SUB, CUS), "--dry-run", name="second.jsonl")
    assert sim["subscriptions"][0]["status"] == "canceled"
    assert (tmp_path / "m.db").read_bytes() == before
    assert _sub_row(tmp_path)["status"] == "active"


def test_right_secret_on_rerun_applies_what_was_rejected(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "d.jsonl", envelopes(f.lifecycle(SUB, CUS, cancel=False)))
    db = str(tmp_path / "m.db")
    code, wrong = run_json(
        "replay-webhook", str(p), "--secret", "whsec_wrong_0000000000", "--db", db
    )
    assert code == 1 and wrong["summary"]["rejected"] == wrong["summary"]["total"]
    code, right = run_json("replay-webhook", str(p), "--secret", SECRET, "--db", db)
    assert code == 0 and right["summary"]["applied"] > 0 and right["summary"]["rejected"] == 0
    assert sqlite3.connect(db).execute(
        "SELECT count(*) FROM events WHERE outcome='rejected'"
    ).fetchone() == (0,)


def test_table_output_and_help(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "d.jsonl", envelopes(f.lifecycle(SUB, CUS)))
    result = run("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"))
    assert result.exit_code == 0
    assert "applied" in result.stdout and SUB in result.stdout
    assert SECRET not in result.stdout + result.stderr
    help_text = run("replay-webhook", "--help").stdout
    assert "Example" in help_text and "Exit codes" in help_text
