"""Every event type, built from Stripe's own example objects, replays legitimately.

tests/corpus/ holds material nobody here wrote (SOURCES.md): the example
objects of stripe/openapi's fixtures3.json at ten commits from 2017 to 2026,
the event-type lists of stripe-node and stripe-python, and the events of
dj-stripe's test suite. Each event is signed as Stripe signs it and replayed
through the CLI, on the serial path and on the worker-pool path.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from stripectl.webhooks.facts import HANDLED, table_for
from tests import corpus_helpers as c
from tests.replay_helpers import run

SNAPSHOTS = range(len(c.openapi_snapshots()))
TABLES = ("subscriptions", "invoices", "customers", "checkout_sessions", "payment_intents")


def replay(
    tmp_path: Path, events: list[dict[str, Any]], jobs: str, monkeypatch: pytest.MonkeyPatch, name: str = "m"
) -> tuple[int, dict[str, Any], Path]:
    """Replay `events` (signed) into the mirror `name`; `jobs` 2 takes the worker pool."""
    if jobs != "1":
        # Small inputs are verified inline: take the worker pool whatever the size.
        monkeypatch.setattr("stripectl.services.parallel.PARALLEL_MIN_BYTES", 0)
    path = tmp_path / "input.jsonl"
    if not path.exists():
        c.write_jsonl(path, events)
    db = tmp_path / f"{name}-{jobs}.db"
    result = run("replay-webhook", str(path), "--secret", c.SECRET, "--db", str(db), "--jobs", jobs, "--json")
    return result.exit_code, json.loads(result.stdout), db


def rows(db: Path, table: str) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return {r["id"]: dict(r) for r in conn.execute(f"SELECT * FROM {table}")}
    finally:
        conn.close()


def test_the_corpus_covers_every_event_type_of_both_sdks() -> None:
    node = c.event_types()["stripe-node"]["types"]
    python = set(c.event_types()["stripe-python"]["types"])
    assert len(node) >= 265 and set(node) <= python
    covered = {e["type"] for i in SNAPSHOTS for e in c.snapshot_events(i)}
    assert covered == set(node)  # each type has a real example object somewhere
    # Every type the mirror stores is among them (a renamed type would show here).
    assert covered >= HANDLED


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("index", SNAPSHOTS, ids=[s["date"] for s in c.openapi_snapshots()])
def test_every_example_event_is_applied_or_ignored_and_mirrored_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: int, jobs: str
) -> None:
    events = c.snapshot_events(index)
    code, report, db = replay(tmp_path, events, jobs, monkeypatch)
    assert code == 0, report["summary"]
    outcomes = {e["event_id"]: e for e in report["events"]}
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        got = outcomes[event["id"]]
        table = table_for(event["type"])
        if table is None:
            assert (got["outcome"], got["reason"]) == ("ignored", "unhandled event type"), event["type"]
            continue
        assert (got["outcome"], got["reason"]) == ("applied", None), (event["type"], got)
        last[(table, event["data"]["object"]["id"])] = event
    assert report["summary"]["rejected"] == 0
    for table in TABLES:
        mirror = rows(db, table)
        expected = {oid: ev for (t, oid), ev in last.items() if t == table}
        assert set(mirror) == set(expected), table
        for oid, event in expected.items():
            want = c.expected_row(table, event["data"]["object"], event["type"])
            got_row = {k: mirror[oid][k] for k in want}
            assert got_row == want, (table, oid, event["api_version"])
            assert mirror[oid]["last_event_id"] == event["id"]
            if table == "invoices":
                # Every invoice event of a snapshot carries the same attempt: an
                # action_required among them holds while the invoice is unsettled.
                asked = any(e["type"] == "invoice.payment_action_required" for e in events)
                unsettled = want["status"] not in ("paid", "void", "uncollectible")
                assert mirror[oid]["action_required"] == int(asked and unsettled)
    # Objects without an id are stored as ignored deliveries with no object id.
    conn = sqlite3.connect(db)
    no_id = {e["type"] for e in events if "id" not in e["data"]["object"]}
    stored = dict(conn.execute("SELECT type, object_id FROM events WHERE outcome = 'ignored'").fetchall())
    conn.close()
    assert no_id and all(stored[t] is None for t in no_id)


def _state(db: Path) -> dict[str, list[dict[str, Any]]]:
    # updated_at records when the mirror learned something: bookkeeping, not state.
    return {
        table: [{k: v for k, v in r.items() if k != "updated_at"} for _, r in sorted(rows(db, table).items())]
        for table in TABLES
    }


def test_serial_and_worker_pool_agree_on_the_whole_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [e for i in SNAPSHOTS for e in c.snapshot_events(i)]
    _, serial, serial_db = replay(tmp_path, events, "1", monkeypatch, name="serial")
    code, pool, pool_db = replay(tmp_path, events, "2", monkeypatch, name="pool")
    assert code == 0 and pool["summary"]["rejected"] == 0
    assert json.dumps(pool["events"]) == json.dumps(serial["events"])
    assert json.dumps(pool["subscriptions"]) == json.dumps(serial["subscriptions"])
    assert _state(pool_db) == _state(serial_db)


def test_the_corpus_in_any_order_gives_the_same_mirror(tmp_path: Path) -> None:
    """Ten API versions of the same kinds of objects (2024-2026 share ids), in
    order, reversed and shuffled: one final mirror (README "Ordering")."""
    import random

    events = [e for i in SNAPSHOTS for e in c.snapshot_events(i)]
    states = []
    for name, order in (
        ("fwd", events),
        ("rev", events[::-1]),
        ("shuf", random.Random(10).sample(events, len(events))),
    ):
        path = c.write_jsonl(tmp_path / f"{name}.jsonl", order)
        result = run("replay-webhook", str(path), "--secret", c.SECRET, "--db", str(tmp_path / f"{name}.db"))
        assert result.exit_code == 0, result.stdout
        states.append(_state(tmp_path / f"{name}.db"))
    assert states[0] == states[1] == states[2]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_djstripe_captured_events_are_never_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    items = c.djstripe_events()
    events = [item["event"] for item in items]
    code, report, db = replay(tmp_path, events, jobs, monkeypatch)
    assert code == 0, [e for e in report["events"] if e["outcome"] == "rejected"]
    by_delivery = report["events"]
    assert len(by_delivery) == len(events)
    for event, got in zip(events, by_delivery, strict=True):
        allowed = {"applied", "stale", "ignored"} if table_for(event["type"]) else {"ignored"}
        # dj-stripe reuses one event id for two schedule events: the second is a duplicate.
        allowed.add("duplicate")
        assert got["outcome"] in allowed, (event["type"], got)
    subs = rows(db, "subscriptions")
    sub_event = next(e for e in events if e["type"] == "customer.subscription.deleted")
    sub = sub_event["data"]["object"]
    want = c.expected_row("subscriptions", sub, sub_event["type"])
    assert {k: subs[sub["id"]][k] for k in want} == want
    upcoming = next(e for e in events if e["type"] == "invoice.upcoming")
    assert "id" not in upcoming["data"]["object"]
