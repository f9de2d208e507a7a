"""Same-second ties between a webhook's mirror row and an API snapshot.

Event `created` and snapshot times are whole seconds: a webhook stamped in
the second a listing/fetch started may describe a change made after the
fetch read the object, so the tie goes to the webhook's row (sync, reconcile
--fix, access). A row that is itself an API snapshot of that second does not
block a fresh one. The clock is injected, so the tie is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stripectl.gateway.client import Gateway, GatewaySettings, connect
from stripectl.services.access import check_access
from stripectl.services.reconcile import ReconcileOptions, reconcile
from stripectl.services.sync import full_sync
from stripectl.store import Store, open_store
from stripectl.store.mirror import get_row, put_rows
from stripectl.webhooks.snapshots import invoice_row, subscription_row
from tests import factories as f
from tests.drift_helpers import KEY
from tests.fakes.base import serve
from tests.fakes.subscriptions import FakeSubscriptions

T = f.T0 + 5 * f.DAY  # the listing's / fetch's snapshot time, and the webhook's `created`


def sub(**kw: Any) -> dict[str, Any]:
    kw.setdefault("metadata", {"user_id": "user_tie", "plan_name": "basic"})
    return f.subscription(id="sub_tie0001", customer="cus_tie0001", created=f.T0, **kw)


def webhook_row(table_row: dict[str, Any], created: int = T) -> dict[str, Any]:
    """A mirror row as replay writes it from an event created at `created`."""
    return {**table_row, "last_event_id": "evt_tie_webhook", "last_event_created": created,
            "last_event_type": "customer.subscription.updated", "source": "webhook",
            "updated_at": created}


@pytest.fixture
def env(tmp_path: Any) -> Iterator[tuple[FakeSubscriptions, Store, Gateway]]:
    # Stripe's listing still shows the subscription active; the webhook
    # from the same second says it was canceled.
    fake = FakeSubscriptions([sub(status="active")])
    store = open_store(str(tmp_path / "m.db"))
    canceled = subscription_row(sub(status="canceled", canceled_at=T))
    with store.transaction():
        put_rows(store, "subscriptions", [webhook_row(canceled)])
    try:
        with serve(fake) as url:
            yield fake, store, connect(GatewaySettings(api_key=KEY, api_base=url))
    finally:
        store.close()


def assert_webhook_row_kept(store: Store) -> None:
    row = get_row(store, "subscriptions", "sub_tie0001")
    assert row is not None
    assert (row["status"], row["last_event_id"], row["source"]) == (
        "canceled", "evt_tie_webhook", "webhook")


def test_sync_keeps_a_same_second_webhook_row(
    env: tuple[FakeSubscriptions, Store, Gateway],
) -> None:
    _, store, gateway = env
    report = full_sync(store, gateway, clock=lambda: T)
    assert report.counts["skipped_newer"] == 1 and report.counts["updated"] == 0
    assert_webhook_row_kept(store)


def test_reconcile_skips_a_same_second_webhook_row_and_fix_keeps_it(
    env: tuple[FakeSubscriptions, Store, Gateway],
) -> None:
    fake, store, gateway = env
    # A webhook-only subscription Stripe's listing does not show (yet): not missing_remote.
    with store.transaction():
        put_rows(store, "subscriptions", [webhook_row(subscription_row(
            f.subscription(id="sub_tie0002", customer="cus_tie0002", created=T)))])
    report = reconcile(store, gateway, ReconcileOptions(fix=True, apply=True), clock=lambda: T)
    assert report.findings == []
    assert sorted(report.skipped_newer) == ["sub_tie0001", "sub_tie0002"]
    assert report.compared == 0 and report.fix_plan == []
    assert_webhook_row_kept(store)
    assert get_row(store, "subscriptions", "sub_tie0002") is not None
    assert fake.count("GET", "/v1/subscriptions/") == 0  # nothing retrieved for a delete


def test_access_keeps_a_same_second_webhook_row_and_denies(
    env: tuple[FakeSubscriptions, Store, Gateway],
) -> None:
    _, store, gateway = env
    report = check_access(store, gateway, "user_tie", clock=lambda: T)
    assert [s.refresh for s in report.subscriptions] == ["kept: newer locally"]
    assert not report.granted and report.subscriptions[0].status == "canceled"
    assert_webhook_row_kept(store)


def test_access_keeps_a_same_second_webhook_invoice(tmp_path: Any) -> None:
    # Stripe's fetch still shows a retry scheduled; the webhook from the same
    # second says the retries are exhausted: no access on the stale retry.
    scheduled = f.invoice(id="in_tie1", subscription="sub_tie0001", customer="cus_tie0001",
                          status="open", attempt_count=1, next_payment_attempt=T + 3 * f.DAY)
    exhausted = {**scheduled, "attempt_count": 4, "next_payment_attempt": None}
    past_due = sub(status="past_due", latest_invoice="in_tie1")
    fake = FakeSubscriptions([past_due], [scheduled])
    store = open_store(str(tmp_path / "m.db"))
    with store.transaction():
        put_rows(store, "subscriptions", [webhook_row(subscription_row(past_due), T - 60)])
        put_rows(store, "invoices", [webhook_row(invoice_row(exhausted))])
    try:
        with serve(fake) as url:
            gateway = connect(GatewaySettings(api_key=KEY, api_base=url))
            report = check_access(store, gateway, "cus_tie0001", clock=lambda: T)
        kept = get_row(store, "invoices", "in_tie1")
    finally:
        store.close()
    assert kept is not None and kept["next_payment_attempt"] is None
    assert kept["last_event_id"] == "evt_tie_webhook"
    assert not report.granted and "no payment retry scheduled" in report.why


def test_a_same_second_api_snapshot_does_not_block_the_next(tmp_path: Any) -> None:
    # `sync && reconcile` within one second still compares (and finds) drift.
    fake = FakeSubscriptions([sub(status="active")])
    store = open_store(str(tmp_path / "m.db"))
    try:
        with serve(fake) as url:
            gateway = connect(GatewaySettings(api_key=KEY, api_base=url))
            assert full_sync(store, gateway, clock=lambda: T).counts["created"] == 1
            fake.update("sub_tie0001", status="canceled")
            report = reconcile(store, gateway, ReconcileOptions(), clock=lambda: T)
            assert report.skipped_newer == [] and report.compared == 1
            assert {x.kind for x in report.findings} >= {"status"}
            again = full_sync(store, gateway, clock=lambda: T)
        assert again.counts["updated"] == 1
        row = get_row(store, "subscriptions", "sub_tie0001")
        assert row is not None and row["status"] == "canceled"
    finally:
        store.close()
