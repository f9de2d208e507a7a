"""`stripectl history ID`: one object's deliveries, mirror state and access decision."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from stripectl.services import history as history_service
from stripectl.store import open_store
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run, write_jsonl

SUB, CUS, USER = "sub_1HistoryExample00000001", "cus_1HistoryExample000001", "user_hist_7"
INV = "in_1HistoryExample0000001"
CS = "cs_test_1HistoryExample000001"


def _story(tmp_path: Path, db: str) -> str:
    """A user who paid, went past_due on a failed renewal, then recovered;
    `db`: a new mirror (a file or a postgresql:// URL: mirror_target)."""
    meta = {"user_id": USER}
    t = f.T0
    events = [
        f.event("customer.created", f.customer(CUS), id="evt_h0", created=t - 10),
        f.event("checkout.session.completed",
                f.checkout_session(CS, subscription=SUB, customer=CUS, client_reference_id=USER,
                                   metadata=meta), id="evt_h1", created=t),
        f.event("customer.subscription.created",
                f.subscription(SUB, customer=CUS, status="incomplete", metadata=meta),
                id="evt_h2", created=t + 1),
        f.event("customer.subscription.updated",
                f.subscription(SUB, customer=CUS, status="active", metadata=meta),
                previous_attributes={"status": "incomplete"}, id="evt_h3", created=t + 2),
        f.event("invoice.payment_failed",
                f.invoice(INV, subscription=SUB, customer=CUS, status="open", attempt_count=1,
                          next_payment_attempt=t + 86400), id="evt_h4", created=t + 100),
        f.event("customer.subscription.updated",
                f.subscription(SUB, customer=CUS, status="past_due", metadata=meta),
                previous_attributes={"status": "active"}, id="evt_h5", created=t + 101),
        f.event("customer.subscription.updated",
                f.subscription(SUB, customer=CUS, status="active", metadata=meta),
                previous_attributes={"status": "past_due"}, id="evt_h6", created=t + 200),
    ]
    envs = envelopes(events)
    # A forged delivery for the same subscription: stored as rejected, contents not shown.
    forged = f.envelope(f.event("customer.subscription.updated",
                                f.subscription(SUB, customer=CUS, status="canceled"),
                                id="evt_forged", created=t + 300), "whsec_wrong_wrong_wrong", t=t + 300)
    p = write_jsonl(tmp_path / "d.jsonl", [*envs, forged])
    res = run("replay-webhook", str(p), "--secret", SECRET, "--db", db, "--json")
    assert res.exit_code == 1, res.stdout  # the forged one is rejected
    return db


def _execute(db: str, *statements: str) -> None:
    """Change the mirror behind the CLI's back, on either engine."""
    store = open_store(db)
    try:
        with store.transaction():
            for sql in statements:
                store.execute(sql)
    finally:
        store.close()


def history_json(db: Path | str, subject: str) -> tuple[int, dict[str, Any]]:
    res = run("history", subject, "--db", str(db), "--json")
    return res.exit_code, json.loads(res.stdout)


def test_subscription_history_oldest_first_with_status_changes(
    tmp_path: Path, mirror_target: str
) -> None:
    db = _story(tmp_path, mirror_target)
    code, h = history_json(db, SUB)
    assert code == 0
    assert h["subject"] == {"id": SUB, "kind": "subscription"}
    ids = [d["event_id"] for d in h["deliveries"]]
    # The forged delivery has no verified event id: found by its raw body.
    assert ids == ["evt_h1", "evt_h2", "evt_h3", "evt_h4", "evt_h5", "evt_h6", None]
    by_id = {d["event_id"]: d for d in h["deliveries"]}
    assert (by_id["evt_h3"]["status_before"], by_id["evt_h3"]["status_after"]) == ("incomplete", "active")
    assert (by_id["evt_h5"]["status_before"], by_id["evt_h5"]["status_after"]) == ("active", "past_due")
    assert by_id["evt_h4"]["object_id"] == INV and by_id["evt_h1"]["object_id"] == CS
    forged = h["deliveries"][-1]
    assert forged["outcome"] == "rejected" and forged["reason"] == "bad_signature"
    assert "unverified" in forged["matched"]
    assert forged["status_after"] is None  # an unverified body's claims are not shown
    assert all(d["source"] for d in h["deliveries"])
    assert {"body"} & set(by_id["evt_h1"]) == set()
    mirror = {r["id"]: r for r in h["mirror"]}
    assert mirror[SUB]["status"] == "active" and mirror[SUB]["last_event_id"] == "evt_h6"
    assert h["access"]["granted"] is True and h["access"]["why"] == "active"


@pytest.mark.parametrize(
    ("subject", "kind", "must_include"),
    [
        (CUS, "customer", {"evt_h0", "evt_h1", "evt_h2", "evt_h4", "evt_h6"}),
        (USER, "user", {"evt_h0", "evt_h1", "evt_h2", "evt_h4", "evt_h6"}),
        (INV, "invoice", {"evt_h4"}),
        (CS, "checkout_session", {"evt_h1", "evt_h6"}),
    ],
)
def test_every_subject_kind_finds_its_deliveries(
    tmp_path: Path, mirror_target: str, subject: str, kind: str, must_include: set[str]
) -> None:
    db = _story(tmp_path, mirror_target)
    code, h = history_json(db, subject)
    assert code == 0 and h["subject"]["kind"] == kind
    assert must_include <= {d["event_id"] for d in h["deliveries"]}
    times = [d["created"] or d["received_at"] for d in h["deliveries"]]
    assert times == sorted(times)
    assert h["access"]["granted"] is True


def test_payment_intent_history_and_its_access_subject(tmp_path: Path, mirror_target: str) -> None:
    pi = f.payment_intent("pi_1HistoryExample00000001", status="succeeded")
    pi["customer"] = CUS
    evts = [f.event("payment_intent.succeeded", pi, id="evt_pi1", created=f.T0)]
    p = write_jsonl(tmp_path / "p.jsonl", envelopes(evts))
    db = mirror_target
    assert run("replay-webhook", str(p), "--secret", SECRET, "--db", db).exit_code == 0
    code, h = history_json(db, "pi_1HistoryExample00000001")
    assert code == 0 and [d["event_id"] for d in h["deliveries"]] == ["evt_pi1"]
    assert h["deliveries"][0]["status_after"] == "succeeded"
    assert h["access"]["subject"] == CUS and h["access"]["granted"] is False


def test_denied_access_is_explained(tmp_path: Path, mirror_target: str) -> None:
    evts = [
        f.event("customer.subscription.created", f.subscription("sub_1HistoryDenied000001",
                customer=CUS, status="canceled"), id="evt_d1", created=f.T0),
    ]
    p = write_jsonl(tmp_path / "d.jsonl", envelopes(evts))
    db = mirror_target
    run("replay-webhook", str(p), "--secret", SECRET, "--db", db)
    code, h = history_json(db, "sub_1HistoryDenied000001")
    assert code == 0 and h["access"] == {**h["access"], "granted": False, "why": "canceled"}
    text = run("history", "sub_1HistoryDenied000001", "--db", db).stdout
    assert "DENIED" in text and "canceled" in text
    assert "\x1b[" not in text  # not a terminal: no colour


def test_unknown_id_exits_1_and_a_missing_mirror_is_an_error(tmp_path: Path, mirror_target: str) -> None:
    db = _story(tmp_path, mirror_target)
    code, h = history_json(db, "sub_unknown")
    assert code == 1 and h["deliveries"] == [] and h["mirror"][0]["in_mirror"] is False
    res = run("history", SUB, "--db", str(tmp_path / "nope.db"))
    assert res.exit_code == 6 and "no mirror at" in res.stderr
    assert not (tmp_path / "nope.db").exists()
    if db.startswith("postgresql://"):  # another schema of the same server: none there either
        res = run("--schema", "nobody_here", "history", SUB, "--db", db)
        assert res.exit_code == 6 and "no mirror at" in res.stderr
        store = open_store(db)
        try:
            assert store.execute(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'nobody_here'"
            ).fetchone()[0] == 0
        finally:
            store.close()


def test_table_output_lists_deliveries_and_the_verdict(tmp_path: Path, mirror_target: str) -> None:
    db = _story(tmp_path, mirror_target)
    res = run("history", SUB, "--db", db)
    assert res.exit_code == 0
    out = res.stdout
    assert "active -> past_due" in out and "past_due -> active" in out
    assert "rejected" in out and "GRANTED" in out
    assert out.index("evt_h") if "evt_h" in out else True
    assert out.find("checkout.session.completed") < out.find("invoice.payment_failed")


def test_history_queries_use_indexes_not_scans(tmp_path: Path) -> None:
    db = _story(tmp_path, str(tmp_path / "m.db"))
    conn = sqlite3.connect(db)

    def plan(sql: str, params: tuple[Any, ...]) -> str:
        return " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))

    deliveries = plan(
        "SELECT e.delivery_id FROM history_index h JOIN events e ON e.delivery_id = h.delivery_id "
        "WHERE h.ref IN (?, ?)", ("a", "b"),
    )
    by_customer = plan("SELECT * FROM invoices WHERE customer IN (?)", ("c",))
    by_user = plan("SELECT * FROM checkout_sessions WHERE user_id IN (?)", ("u",))
    conn.close()
    assert "SCAN" not in deliveries, deliveries
    assert "USING INDEX" in by_customer and "USING INDEX" in by_user


def test_history_queries_use_indexes_not_scans_on_postgres(tmp_path: Path, pg_url: str) -> None:
    """With sequential scans priced out, a plan that still scans has no index
    to use: the catch-up's rowid reads included (PostgreSQL's rowid is a
    plain column, indexed by migration 7)."""
    db = _story(tmp_path, pg_url)
    store = open_store(db)
    try:
        store.execute("SET enable_seqscan = off")

        def plan(sql: str, params: tuple[Any, ...] = ()) -> str:
            return " ".join(str(r[0]) for r in store.execute("EXPLAIN " + sql, params).fetchall())

        plans = [
            plan("SELECT e.delivery_id FROM history_index h JOIN events e "
                 "ON e.delivery_id = h.delivery_id WHERE h.ref IN (?, ?)", ("a", "b")),
            plan("SELECT * FROM invoices WHERE customer IN (?)", ("c",)),
            plan("SELECT * FROM checkout_sessions WHERE user_id IN (?)", ("u",)),
            plan("SELECT coalesce(max(rowid), 0) FROM events"),
            plan("SELECT delivery_id FROM events WHERE rowid = ?", (3,)),
            plan("SELECT delivery_id FROM events WHERE rowid > ? AND rowid <= ?", (1, 5)),
        ]
    finally:
        store.close()
    for p in plans:
        assert "Seq Scan" not in p, p


def test_the_index_catches_up_with_new_deliveries(tmp_path: Path, mirror_target: str) -> None:
    db = _story(tmp_path, mirror_target)
    assert history_json(db, SUB)[0] == 0
    later = f.event("customer.subscription.updated",
                    f.subscription(SUB, customer=CUS, status="canceled", metadata={"user_id": USER}),
                    previous_attributes={"status": "active"}, id="evt_h7", created=f.T0 + 400)
    p = write_jsonl(tmp_path / "later.jsonl", envelopes([later]))
    assert run("replay-webhook", str(p), "--secret", SECRET, "--db", db).exit_code == 0
    code, h = history_json(db, SUB)
    assert code == 0 and h["deliveries"][-1]["event_id"] == "evt_h7"
    assert (h["deliveries"][-1]["status_before"], h["deliveries"][-1]["status_after"]) == (
        "active", "canceled")
    assert h["access"]["granted"] is False


def test_a_mark_above_every_delivery_rebuilds_the_index(tmp_path: Path, mirror_target: str) -> None:
    db = _story(tmp_path, mirror_target)
    history_json(db, SUB)
    _execute(db, "DELETE FROM history_index",
             "UPDATE meta SET value = '999999' WHERE key = 'history_indexed_rowid'")
    code, h = history_json(db, SUB)
    assert code == 0 and len(h["deliveries"]) == 7


def test_a_section_provider_can_be_added(tmp_path: Path, mirror_target: str) -> None:
    db = _story(tmp_path, mirror_target)

    def extra(store: Any, subject: history_service.Subject) -> history_service.Section:
        return history_service.Section(key="extra", title="extra", columns=[("n", "n")],
                                       rows=[{"n": len(subject.object_ids())}])

    history_service.SECTIONS.append(extra)
    try:
        code, h = history_json(db, SUB)
        text = run("history", SUB, "--db", db).stdout
    finally:
        history_service.SECTIONS.remove(extra)
    assert code == 0 and h["extra"] == [{"n": 3}]
    assert "extra" in text


def test_rowids_moved_by_vacuum_rebuild_the_index(tmp_path: Path) -> None:
    # SQLite only: PostgreSQL's rowid is a column of its own, VACUUM leaves it as it is.
    db = _story(tmp_path, str(tmp_path / "m.db"))
    history_json(db, SUB)
    conn = sqlite3.connect(db)
    # inbox prune deletes and VACUUMs: rowids of a TEXT-keyed table move.
    conn.execute("DELETE FROM events WHERE event_id = 'evt_h0'")
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    later = f.event("customer.subscription.updated",
                    f.subscription(SUB, customer=CUS, status="canceled", metadata={"user_id": USER}),
                    previous_attributes={"status": "active"}, id="evt_h8", created=f.T0 + 500)
    run("replay-webhook", str(write_jsonl(tmp_path / "l.jsonl", envelopes([later]))), "--secret",
        SECRET, "--db", str(db))
    code, h = history_json(db, SUB)
    # Without the mark's delivery check evt_h8 took the old mark's rowid and was missed.
    assert code == 0 and h["deliveries"][-1]["event_id"] == "evt_h8"
    assert len(h["deliveries"]) == 8


def test_a_mirror_from_before_history_is_migrated_and_indexed(
    tmp_path: Path, mirror_target: str
) -> None:
    db = _story(tmp_path, mirror_target)
    # As a mirror made before history existed (schema version 4).
    version = ("DELETE FROM schema_migrations WHERE version > 4" if db.startswith("postgresql://")
               else "PRAGMA user_version = 4")
    _execute(db, "DROP TABLE IF EXISTS history_index",
             "DELETE FROM meta WHERE key = 'history_indexed_rowid'", version)
    code, h = history_json(db, SUB)
    assert code == 0 and len(h["deliveries"]) == 7
    assert h["deliveries"][-1]["outcome"] == "rejected"


def test_refs_in_a_rejected_body_are_bounded_and_only_ids() -> None:
    from stripectl.store.history import _MAX_REFS, refs_in

    body = b'{"a":"sub_1Abcd","b":"not_an_id","c":"cus_XYZ12","d":"sub_1Abcd"}'
    assert refs_in(body) == ["sub_1Abcd", "cus_XYZ12"]
    many = ("[" + ",".join(f'"sub_{i:08d}"' for i in range(500)) + "]").encode()
    assert len(refs_in(many)) == _MAX_REFS
    assert refs_in(None) == [] and refs_in(b"") == []
