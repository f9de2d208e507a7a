"""`stripectl access`: live refresh (newest wins), grace policies, offline answers and age."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from stripectl.store import open_store
from stripectl.store.mirror import get_row
from tests import factories as f
from tests.conftest import free_port
from tests.drift_helpers import cli, put
from tests.fakes.base import serve
from tests.fakes.subscriptions import FakeSubscriptions


def sub(n: int, **kw: Any) -> dict[str, Any]:
    kw.setdefault("metadata", {"user_id": f"user_{n}", "plan_name": "basic"})
    return f.subscription(id=f"sub_acc{n:03d}", customer=f"cus_acc{n:03d}", created=f.T0 + n, **kw)



def mirror(db: Path, table: str, row_id: str) -> dict[str, Any] | None:
    store = open_store(str(db))
    try:
        return get_row(store, table, row_id)
    finally:
        store.close()


def test_live_refresh_updates_mirror_and_denies_canceled(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(1), sub(2)])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        assert cli(url, db, "sync").exit_code == 0
        granted = cli(url, db, "access", "user_1")
        assert granted.exit_code == 0 and granted.stdout.startswith("GRANTED: user_1")
        fake.update("sub_acc001", status="canceled")  # missed webhook
        fake.requests.clear()
        result = cli(url, db, "access", "user_1", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["granted"] is False and report["mode"] == "live"
    assert report["why"] == "sub_acc001 canceled"
    assert report["subscriptions"][0]["refresh"] == "updated"
    assert [(r.path, r.query.get("customer")) for r in fake.requests] == [
        ("/v1/subscriptions", "cus_acc001")]
    stored = mirror(db, "subscriptions", "sub_acc001")
    assert stored is not None and stored["status"] == "canceled" and stored["source"] == "api"


def test_customer_id_on_an_empty_mirror(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(1, status="trialing"), sub(2)])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        result = cli(url, db, "access", "cus_acc001", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["granted"] and report["why"] == "sub_acc001 trialing"
    assert [s["refresh"] for s in report["subscriptions"]] == ["created"]
    assert mirror(db, "subscriptions", "sub_acc002") is None  # another customer's


def test_past_due_grace_policies_use_the_latest_invoice(tmp_path: Path) -> None:
    now = int(time.time())
    inv = f.invoice(id="in_acc1", subscription="sub_acc001", customer="cus_acc001",
                    status="open", attempt_count=1, next_payment_attempt=now + 3 * f.DAY)
    fake = FakeSubscriptions([sub(1, status="past_due", latest_invoice="in_acc1")], [inv])
    db = tmp_path / "m.db"
    with serve(fake) as url:
        retry = cli(url, db, "access", "cus_acc001", "--json")
        assert retry.exit_code == 0
        assert json.loads(retry.stdout)["why"] == "sub_acc001 past_due: a payment retry is scheduled"
        stored = mirror(db, "invoices", "in_acc1")
        assert stored is not None and stored["next_payment_attempt"] == now + 3 * f.DAY
        assert cli(url, db, "access", "cus_acc001", "--grace", "none").exit_code == 1
        assert cli(url, db, "access", "cus_acc001", "--grace", "7d").exit_code == 0
        assert cli(url, db, "access", "cus_acc001", "--grace", "sometimes").exit_code == 2
        # Retries exhausted: Stripe clears next_payment_attempt.
        fake.invoices["in_acc1"] = {**inv, "attempt_count": 4, "next_payment_attempt": None}
        done = cli(url, db, "access", "cus_acc001", "--json")
    assert done.exit_code == 1
    assert "no payment retry scheduled" in json.loads(done.stdout)["why"]


def test_newer_mirror_row_wins_over_the_fetch(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(1)])
    db = tmp_path / "m.db"
    later = int(time.time()) + 600  # a webhook newer than our fetch
    put(db, "subscriptions", [{"id": "sub_acc001", "customer": "cus_acc001", "status": "canceled",
                               "user_id": "user_1", "last_event_created": later,
                               "last_event_id": "evt_acc", "source": "webhook"}])
    with serve(fake) as url:
        result = cli(url, db, "access", "user_1", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["subscriptions"][0]["refresh"] == "kept: newer locally"
    assert report["subscriptions"][0]["status"] == "canceled"


def test_user_found_through_checkout_session(tmp_path: Path) -> None:
    fake = FakeSubscriptions([sub(5, metadata={})])
    db = tmp_path / "m.db"
    put(db, "checkout_sessions", [{"id": "cs_test_acc5", "customer": "cus_acc005",
                                   "user_id": "user_checkout", "last_event_created": f.T0}])
    with serve(fake) as url:
        result = cli(url, db, "access", "user_checkout")
        unknown = cli(url, db, "access", "user_nobody", "--json")
    assert result.exit_code == 0 and "sub_acc005 active" in result.stdout
    assert unknown.exit_code == 1
    assert json.loads(unknown.stdout)["why"] == "no subscription found for user_nobody"
    assert "stripectl sync" in unknown.stderr


def test_offline_answers_from_the_mirror_with_its_age(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    hour_ago = int(time.time()) - 3600
    put(db, "subscriptions", [{"id": "sub_acc009", "customer": "cus_acc009", "status": "active",
                               "user_id": "user_9", "last_event_created": hour_ago,
                               "source": "webhook"}])
    dead = f"http://127.0.0.1:{free_port()}"  # offline must not call anything
    result = cli(dead, db, "access", "user_9", "--offline", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["mode"] == "offline" and report["data_as_of"] == hour_ago
    assert 3600 <= report["age_seconds"] < 3600 + 300
    text = cli(dead, db, "access", "user_9", "--offline")
    assert "from the mirror only" in text.stdout and "1h old" in text.stdout
    stale = cli(dead, db, "access", "user_9", "--offline", "--max-age", "30m", "--json")
    assert stale.exit_code == 1
    assert json.loads(stale.stdout)["stale"] is True
    assert cli(dead, db, "access", "user_9", "--offline", "--max-age", "2h").exit_code == 0
    assert cli(dead, db, "access", "user_9", "--max-age", "2h").exit_code == 2
    assert cli(dead, db, "access", "user_9", "--offline", "--max-age", "soon").exit_code == 2


def test_mirror_only_subscription_is_not_granted_live(tmp_path: Path) -> None:
    fake = FakeSubscriptions([])
    db = tmp_path / "m.db"
    put(db, "subscriptions", [{"id": "sub_acc404", "status": "active", "user_id": "user_ghost",
                               "last_event_created": int(time.time()) - 60}])
    with serve(fake) as url:
        live = cli(url, db, "access", "user_ghost", "--json")
        offline = cli(url, db, "access", "user_ghost", "--offline")
    report = json.loads(live.stdout)
    assert live.exit_code == 1 and report["why"].startswith("sub_acc404 not found in Stripe")
    assert [r.path for r in fake.requests] == ["/v1/subscriptions/sub_acc404"]
    assert offline.exit_code == 0  # offline trusts the mirror, and says how old it is


class SlowSubscriptions(FakeSubscriptions):
    """Each request takes 0.2 s; counts how many were in flight at once."""

    def __init__(self, subs: list[dict[str, Any]]) -> None:
        super().__init__(subs)
        self.in_flight = self.most_in_flight = 0

    def route(self, req: Any) -> Any:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(0.2)
            return super().route(req)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_a_user_with_many_subscriptions_is_refreshed_concurrently(tmp_path: Path) -> None:
    # One user, six customers (one subscription each): six listings, paced, at once.
    subs = [f.subscription(id=f"sub_many{n}", customer=f"cus_many{n}", created=f.T0 + n,
                           metadata={"user_id": "user_many", "plan_name": "pro"})
            for n in range(6)]
    fake = SlowSubscriptions(subs)
    db = tmp_path / "m.db"
    with serve(fake) as url:
        assert cli(url, db, "sync").exit_code == 0
        fake.update("sub_many3", status="canceled")
        fake.most_in_flight = 0
        fake.requests.clear()
        result = cli(url, db, "access", "user_many", "--json", "--max-rps", "50",
                     "--concurrency", "6")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(s["subscription"] for s in report["subscriptions"]) == [
        f"sub_many{n}" for n in range(6)]
    assert {s["subscription"]: s["status"] for s in report["subscriptions"]}["sub_many3"] \
        == "canceled"
    assert sorted(r.query.get("customer") for r in fake.requests) == [
        f"cus_many{n}" for n in range(6)]
    assert fake.most_in_flight >= 3  # not one after another
