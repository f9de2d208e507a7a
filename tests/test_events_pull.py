"""`events pull`: the Events API caught up oldest first, deduped, with a cursor.

Everything goes through stripe-python's real HTTP stack to tests/fakes/events.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stripectl.gateway.client import Gateway, GatewaySettings, connect
from stripectl.services.events_pull import CURSOR_KEY, CURSOR_OVERLAP, cursor_key, pull_events
from stripectl.services.replay import ReplayOptions, replay
from stripectl.store import Store, open_store
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.fakes.base import serve
from tests.fakes.events import FakeEvents

KEY = "sk_test_stripectl_fake_0000"
NOW = f.T0 + 10 * f.DAY  # explicit clock for the service: no test reads the wall clock
SUB, CUS = "sub_pull_1", "cus_pull_1"


def customer_events(n: int, start: int, prefix: str = "a") -> list[dict[str, Any]]:
    # Two events per second on purpose: same-second ties must survive paging.
    return [
        f.event(
            "customer.created",
            f.customer(f"cus_{prefix}{i:04d}"),
            id=f"evt_{prefix}{i:04d}",
            created=start + i // 2,
        )
        for i in range(n)
    ]


@pytest.fixture
def fake() -> Iterator[tuple[FakeEvents, str]]:
    app = FakeEvents()
    with serve(app) as url:
        yield app, url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "m.db"))
    yield s
    s.close()


def gw(url: str) -> Gateway:
    return connect(GatewaySettings(api_key=KEY, api_base=url, max_network_retries=0))


def stored_ids(store: Store) -> list[str]:
    return [r["event_id"] for r in store.query("SELECT event_id FROM events ORDER BY rowid")]


def test_pages_newest_first_and_applies_oldest_first(
    fake: tuple[FakeEvents, str], store: Store
) -> None:
    app, url = fake
    events = customer_events(250, f.T0 + 3600)
    sub_created = f.event(
        "customer.subscription.created",
        f.subscription(SUB, CUS, "active"),
        id="evt_sub_1",
        created=f.T0 + 7200,
    )
    sub_canceled = f.event(
        "customer.subscription.deleted",
        f.subscription(SUB, CUS, "canceled"),
        id="evt_sub_2",
        created=f.T0 + 7300,
    )
    for e in [*events, sub_canceled, sub_created]:
        app.add(e)
    seen: list[int] = []

    report = pull_events(
        store, gw(url), since=f.T0, types=None, delivery_failed=False, progress=seen.append, now=NOW
    )

    assert (report.fetched, report.new, report.duplicate) == (252, 252, 0)
    assert report.ok and report.replay is not None and report.replay.summary["applied"] == 252
    assert sum(seen) == 252
    lists = app.list_requests()
    # 100 + 100 + 52 in `created` windows from --since on (gateway/windows.py).
    assert 3 <= len(lists) <= 9
    assert all(
        r.query["limit"] == "100" and int(r.query["created"]["gte"]) >= f.T0 for r in lists
    )
    assert min(int(r.query["created"]["gte"]) for r in lists) == f.T0
    assert any(r.query.get("starting_after") == "evt_a0152" for r in lists)
    # Stored (and applied) oldest first, whatever order Stripe listed them in.
    expected = sorted(app.events.values(), key=lambda e: (e["created"], e["id"]))
    assert stored_ids(store) == [e["id"] for e in expected]
    rows = store.query("SELECT DISTINCT source, verified, headers FROM events")
    assert rows == [{"source": "api", "verified": 1, "headers": "{}"}]
    assert store.query("SELECT status FROM subscriptions WHERE id = ?", (SUB,)) == [
        {"status": "canceled"}
    ]
    assert report.cursor == {"created": f.T0 + 7300, "id": "evt_sub_2"}
    assert json.loads(store.meta_get(CURSOR_KEY) or "{}") == report.cursor


def test_second_run_continues_from_cursor_and_skips_duplicates(
    fake: tuple[FakeEvents, str], store: Store
) -> None:
    app, url = fake
    for e in customer_events(120, f.T0):
        app.add(e)
    first = pull_events(store, gw(url), since=f.T0, types=None, delivery_failed=False, now=NOW)
    assert first.new == 120
    cursor = first.cursor
    assert cursor is not None and cursor["created"] == f.T0 + 59
    # Stripe keeps listing: one more event in the cursor's own second, then 30 later ones.
    app.add(f.event("customer.created", f.customer("cus_tie"), id="evt_tie", created=f.T0 + 59))
    for e in customer_events(30, f.T0 + 500, prefix="b"):
        app.add(e)
    before = len(app.list_requests())

    second = pull_events(store, gw(url), since=None, types=None, delivery_failed=False, now=NOW)

    queries = [r.query for r in app.list_requests()[before:]]
    # Resumed from the cursor minus the overlap window; what was seen is skipped by id.
    assert min(int(q["created"]["gte"]) for q in queries) == f.T0 + 59 - CURSOR_OVERLAP
    assert (second.fetched, second.new, second.duplicate) == (151, 31, 120)
    counts = store.query(
        "SELECT event_id, count(*) AS n FROM events GROUP BY event_id HAVING n > 1"
    )
    assert counts == []
    assert store.query("SELECT count(*) AS n FROM events") == [{"n": 151}]
    assert second.cursor == {"created": f.T0 + 500 + 14, "id": "evt_b0029"}

    third = pull_events(store, gw(url), since=None, types=None, delivery_failed=False, now=NOW)
    assert (third.new, third.duplicate) == (0, 30) and third.cursor == second.cursor


def test_events_already_received_by_webhook_are_skipped(
    fake: tuple[FakeEvents, str], store: Store
) -> None:
    app, url = fake
    events = customer_events(5, f.T0)
    for e in events:
        app.add(e)
    env = f.envelope(events[2], t=events[2]["created"])
    webhook = Delivery(
        source="listener",
        body=env["body"].encode(),
        headers=env["headers"],
        received_at=env["received_at"],
    )
    replay(store, [webhook], ReplayOptions(secrets=[f.EXAMPLE_SECRET]), now=NOW)

    report = pull_events(store, gw(url), since=f.T0, types=None, delivery_failed=False, now=NOW)

    assert (report.fetched, report.new, report.duplicate) == (5, 4, 1)
    rows = store.query("SELECT source FROM events WHERE event_id = ?", (events[2]["id"],))
    assert rows == [{"source": "listener"}]  # the signed capture is kept, no second row


def test_type_and_delivery_failed_filters_keep_their_own_cursor(
    fake: tuple[FakeEvents, str], store: Store
) -> None:
    app, url = fake
    inv = f.invoice("in_pull_1", SUB, CUS, "open", attempt_count=1)
    failed = f.event("invoice.payment_failed", inv, id="evt_failed_1", created=f.T0 + 10)
    delivered = f.event("invoice.payment_failed", inv, id="evt_ok_1", created=f.T0 + 5)
    other = f.event("customer.created", f.customer("cus_other"), id="evt_other", created=f.T0 + 20)
    app.add(failed, delivered=False)
    app.add(delivered)
    app.add(other, delivered=False)

    report = pull_events(
        store, gw(url), since=f.T0, types=["invoice.payment_failed"], delivery_failed=True, now=NOW
    )

    for q in (r.query for r in app.list_requests()):
        assert q["types"] == ["invoice.payment_failed"] and q["delivery_success"] == "false"
    assert report.fetched == 1 and stored_ids(store) == ["evt_failed_1"]
    assert store.meta_get(CURSOR_KEY) is None  # says nothing about unfiltered events
    key = cursor_key(["invoice.payment_failed"], True)
    assert json.loads(store.meta_get(key) or "{}")["id"] == "evt_failed_1"


def test_since_beyond_retention_is_clamped_with_a_warning(
    fake: tuple[FakeEvents, str], store: Store
) -> None:
    app, url = fake
    app.add(
        f.event("customer.created", f.customer("cus_recent"), id="evt_recent", created=NOW - 3600)
    )

    report = pull_events(
        store, gw(url), since=NOW - 45 * f.DAY, types=None, delivery_failed=False, now=NOW
    )

    assert report.since == NOW - 30 * f.DAY
    assert min(int(r.query["created"]["gte"]) for r in app.list_requests()) == NOW - 30 * f.DAY
    assert len(report.warnings) == 1 and "30-day retention" in report.warnings[0]
    assert report.fetched == 1


def test_stripe_errors_map_to_exit_codes(tmp_path: Path) -> None:
    from stripectl.errors import StripectlError, UsageError

    class Broken(FakeEvents):
        def route(self, req: Any) -> Any:
            from tests.fakes.base import error

            return error(401, "Invalid API Key provided: sk_test_****0000", "invalid_request_error")

    s = open_store(str(tmp_path / "m.db"))
    try:
        with serve(Broken()) as url, pytest.raises(StripectlError) as exc:
            pull_events(s, gw(url), since=f.T0, types=None, delivery_failed=False, now=NOW)
        assert exc.value.exit_code == 3
        with pytest.raises(UsageError, match="cursor"):
            pull_events(
                s, gw("http://127.0.0.1:9"), since=None, types=None, delivery_failed=False, now=NOW
            )
        assert sqlite3.connect(tmp_path / "m.db").execute(
            "SELECT count(*) FROM events"
        ).fetchone() == (0,)
    finally:
        s.close()


def test_a_stale_cursor_warns_that_events_were_missed(
    fake: tuple[FakeEvents, str], store: Store
) -> None:
    _, url = fake
    with store.transaction():
        store.meta_set(CURSOR_KEY, json.dumps({"created": NOW - 40 * f.DAY, "id": "evt_old"}))
    report = pull_events(store, gw(url), since=None, types=None, delivery_failed=False, now=NOW)
    assert report.since == NOW - 30 * f.DAY
    assert report.warnings and report.warnings[0].startswith("the events cursor")
    assert "NOT pulled" in report.warnings[0]


def test_since_after_the_cursor_keeps_the_cursor_and_warns_of_the_gap(
    fake: tuple[FakeEvents, str], store: Store
) -> None:
    app, url = fake
    app.add(f.event("customer.created", f.customer("cus_g1"), id="evt_g1", created=NOW - 5 * 3600))
    first = pull_events(store, gw(url), since=NOW - 6 * 3600, types=None, delivery_failed=False,
                        now=NOW)
    assert first.cursor == {"created": NOW - 5 * 3600, "id": "evt_g1"}
    # Never pulled: one event in the gap, one inside the --since window.
    app.add(f.event("customer.created", f.customer("cus_g2"), id="evt_g2", created=NOW - 4 * 3600))
    app.add(f.event("customer.created", f.customer("cus_g3"), id="evt_g3", created=NOW - 3600))

    jumped = pull_events(store, gw(url), since=NOW - 2 * 3600, types=None, delivery_failed=False,
                         now=NOW)

    assert jumped.new == 1 and jumped.cursor == first.cursor
    assert json.loads(store.meta_get(CURSOR_KEY) or "{}") == first.cursor
    assert any("NOT pulled" in w and "cursor stays" in w for w in jumped.warnings)
    # The next plain pull reads the gap.
    resumed = pull_events(store, gw(url), since=None, types=None, delivery_failed=False, now=NOW)
    assert "evt_g2" in stored_ids(store) and resumed.new == 1 and resumed.warnings == []
    assert resumed.cursor == {"created": NOW - 3600, "id": "evt_g3"}
    # A --since at or before the cursor leaves no gap: the cursor moves on.
    app.add(f.event("customer.created", f.customer("cus_g4"), id="evt_g4", created=NOW - 60))
    overlap = pull_events(store, gw(url), since=NOW - 3600, types=None, delivery_failed=False,
                          now=NOW)
    assert overlap.warnings == [] and overlap.cursor == {"created": NOW - 60, "id": "evt_g4"}


def test_windows_keep_the_oldest_first_order_into_the_mirror(
    fake: tuple[FakeEvents, str], store: Store
) -> None:
    """Pulled in concurrent `created` windows, applied exactly as one sequential
    listing reversed: oldest first, and within a second in Stripe's order
    reversed, even when one second holds more than a page."""
    app, url = fake
    events: list[dict[str, Any]] = []
    seconds = [f.T0 + 5] * 130 + [f.T0 + 3 * 3600 + s // 3 for s in range(240)]
    seconds += [f.T0 + 2 * f.DAY + 60 * s for s in range(90)]
    for i, created in enumerate(seconds):
        events.append(f.event("customer.created", f.customer(f"cus_w{i:04d}"),
                              id=f"evt_w{(i * 7919) % 10007:05d}", created=created))
    for e in events:
        app.add(e)
    gateway = connect(GatewaySettings(api_key=KEY, api_base=url, max_network_retries=0,
                                      max_rps=1000, concurrency=6))

    report = pull_events(store, gateway, since=f.T0, types=None, delivery_failed=False, now=NOW)

    assert report.fetched == len(events) == report.new
    sequential = sorted(events, key=lambda e: (e["created"], e["id"]), reverse=True)
    assert stored_ids(store) == [e["id"] for e in reversed(sequential)]
    # More than one window was in flight, each asked for whole seconds.
    lows = {r.query["created"]["gte"] for r in app.list_requests()}
    assert len(lows) >= 3
