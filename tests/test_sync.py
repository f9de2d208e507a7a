"""`stripectl sync` against the current-shape fake: rows, newest wins, paging, incremental."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from stripectl.store import open_store
from stripectl.store.mirror import get_row, put_rows
from tests import factories as f
from tests.drift_helpers import cli
from tests.fakes.base import FakeStripe, Request, Response, serve
from tests.fakes.events import FakeEvents
from tests.fakes.subscriptions import FakeSubscriptions


def sub(n: int, **kw: Any) -> dict[str, Any]:
    kw.setdefault("metadata", {"user_id": f"user_{n}", "plan_name": "basic"})
    return f.subscription(id=f"sub_syn{n:04d}", customer=f"cus_syn{n:04d}", created=f.T0 + n, **kw)


def row(db: Path, sub_id: str) -> dict[str, Any]:
    store = open_store(str(db))
    try:
        found = get_row(store, "subscriptions", sub_id)
    finally:
        store.close()
    assert found is not None
    return found


def test_full_sync_builds_rows_from_the_current_shape(tmp_path: Path) -> None:
    multi = sub(1, items=[{"price": "price_basic", "quantity": 2},
                          {"price": "price_pro", "quantity": 1}],
                current_period_end=f.T0 + 40 * f.DAY)
    canceled = sub(2, status="canceled", canceled_at=f.T0 + 5, cancel_at_period_end=True)
    fake = FakeSubscriptions([multi, canceled, sub(3, status="trialing")])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        result = cli(url, db, "sync", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "full"
    assert report["summary"] == {"created": 3, "updated": 0, "unchanged": 0,
                                 "skipped_newer": 0, "total": 3}
    r1 = row(db, "sub_syn0001")
    assert (r1["price"], r1["quantity"], r1["current_period_end"]) == (
        "price_basic,price_pro", 3, f.T0 + 40 * f.DAY)
    assert r1["user_id"] == "user_1" and r1["plan_name"] == "basic"
    started = report["listing_started_at"]
    assert r1["source"] == "sync" and r1["last_event_id"] == f"sync:{started}"
    assert r1["last_event_created"] == started == r1["status_since"]
    r2 = row(db, "sub_syn0002")
    assert r2["status"] == "canceled" and r2["cancel_at_period_end"] == 1
    store = open_store(str(db))
    assert store.meta_get("livemode") == "0"
    store.close()


def test_resync_counts_and_status_since(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(n) for n in range(1, 4)])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        assert cli(url, db, "sync").exit_code == 0
        since_before = row(db, "sub_syn0002")["status_since"]
        fake.update("sub_syn0001", status="past_due")
        fake.put(sub(2, quantity=4))
        result = cli(url, db, "sync", "--json")
        text = cli(url, db, "sync")
    summary = json.loads(result.stdout)["summary"]
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (0, 2, 1)
    started = json.loads(result.stdout)["listing_started_at"]
    assert row(db, "sub_syn0001")["status_since"] == started  # status changed
    assert row(db, "sub_syn0002")["status_since"] == since_before  # only quantity changed
    assert row(db, "sub_syn0002")["quantity"] == 4
    assert text.exit_code == 0 and "unchanged 3" in text.stdout


def test_listing_never_overwrites_a_newer_mirror_row(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(1)])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        assert cli(url, db, "sync").exit_code == 0
        store = open_store(str(db))
        with store.transaction():
            current = get_row(store, "subscriptions", "sub_syn0001")
            assert current is not None
            put_rows(store, "subscriptions", [{
                **current, "status": "past_due", "last_event_id": "evt_newer",
                "last_event_created": current["last_event_created"] + 3600, "source": "webhook",
            }])
        store.close()
        result = cli(url, db, "sync", "--json")
    assert json.loads(result.stdout)["summary"]["skipped_newer"] == 1
    kept = row(db, "sub_syn0001")
    assert (kept["status"], kept["last_event_id"], kept["source"]) == (
        "past_due", "evt_newer", "webhook")


def test_checkout_user_link_survives_sync_and_is_not_drift(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(1, metadata={})])
    db = tmp_path / "m.db"
    store = open_store(str(db))
    with store.transaction():
        put_rows(store, "checkout_sessions", [{
            "id": "cs_test_syn1", "subscription": "sub_syn0001", "user_id": "user_from_checkout",
            "plan_name": "pro", "last_event_created": f.T0,
        }])
    store.close()
    with serve(fake) as url:
        assert cli(url, db, "sync").exit_code == 0
        assert row(db, "sub_syn0001")["user_id"] == "user_from_checkout"
        assert row(db, "sub_syn0001")["plan_name"] == "pro"
        assert cli(url, db, "sync").exit_code == 0
        assert row(db, "sub_syn0001")["user_id"] == "user_from_checkout"
        assert cli(url, db, "reconcile").exit_code == 0


def test_listing_pages_of_100(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(n) for n in range(250)])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        result = cli(url, db, "sync", "--json")
    assert json.loads(result.stdout)["summary"]["created"] == 250
    lists = fake.list_requests()
    assert math.ceil(250 / 100) < len(lists) <= 2 * math.ceil(250 / 100) + 3
    assert json.loads(result.stdout)["requests"] == len(lists)
    assert all(r.query["status"] == "all" and r.query["limit"] == "100" for r in lists)
    assert lists[0].query.get("starting_after") is None
    assert any(r.query.get("starting_after") for r in lists[1:])  # windows page by cursor


class SubsAndEvents(FakeStripe):
    def __init__(self, subs: FakeSubscriptions, events: FakeEvents) -> None:
        super().__init__()
        self.subs, self.events = subs, events

    def route(self, req: Request) -> Response:
        return (self.events if req.path.startswith("/v1/events") else self.subs).route(req)


def test_since_cursor_falls_back_to_full_then_goes_incremental(tmp_path: Path) -> None:
    subs, events = FakeSubscriptions([sub(1), sub(2)]), FakeEvents()
    both = SubsAndEvents(subs, events)
    db = tmp_path / "m.db"
    with serve(both) as url:
        first = cli(url, db, "sync", "--since", "cursor", "--json")
        assert first.exit_code == 0, first.stderr
        assert json.loads(first.stdout)["mode"] == "full"
        assert "no events cursor" in first.stderr and "full sync" in first.stderr
        listed_at = row(db, "sub_syn0001")["last_event_created"]

        changed = sub(1, status="past_due")
        events.add(f.event("customer.subscription.updated", changed, id="evt_syn_1",
                           created=listed_at + 1, previous_attributes={"status": "active"}))
        both.requests.clear()
        second = cli(url, db, "sync", "--since", "cursor", "--json")
    assert second.exit_code == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["mode"] == "incremental" and report["events"]["fetched"] == 1
    assert not [r for r in both.requests if r.path.startswith("/v1/subscriptions")]
    assert {r.path for r in both.requests} == {"/v1/events"}
    updated = row(db, "sub_syn0001")
    assert (updated["status"], updated["last_event_id"]) == ("past_due", "evt_syn_1")


def test_since_beyond_retention_does_a_full_sync(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(1)])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        result = cli(url, db, "sync", "--since", "45d")
        bad = cli(url, db, "sync", "--since", "yesterday-ish")
    assert result.exit_code == 0
    assert "30-day retention" in result.stderr and "full sync" in result.stderr
    assert "synced 1 subscriptions" in result.stdout
    assert bad.exit_code == 2


def test_incremental_sync_after_a_newer_full_sync_moves_the_cursor(tmp_path: Path) -> None:
    # Cursor older than the last full listing: resuming from the listing is no gap.
    subs, events = FakeSubscriptions([sub(1)]), FakeEvents()
    both = SubsAndEvents(subs, events)
    db = tmp_path / "m.db"
    store = open_store(str(db))
    with store.transaction():
        # Placed relative to the real clock (the CLI reads it); an hour before the listing.
        old = int(time.time()) - 3600
        store.meta_set("events_cursor", json.dumps({"created": old, "id": "evt_syn_old"}))
    store.close()
    with serve(both) as url:
        assert cli(url, db, "sync").exit_code == 0  # full: listing started after the cursor
        listed_at = row(db, "sub_syn0001")["last_event_created"]
        events.add(f.event("customer.subscription.updated", sub(1, status="past_due"),
                           id="evt_syn_2", created=listed_at + 1,
                           previous_attributes={"status": "active"}))
        result = cli(url, db, "sync", "--since", "cursor", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "incremental" and "NOT pulled" not in result.stderr
    assert report["events"]["cursor"]["id"] == "evt_syn_2"
