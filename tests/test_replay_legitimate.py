"""Legitimate deliveries Stripe really sends never make a run fail (issue 10 section 1):
objects without an id, old invoice shapes, 3-D Secure attempts, settled invoices.

Each test runs on the serial path (`--jobs 1`) and on the worker pool
(`--jobs 2`, forced for small inputs), which must agree. Example objects
come from tests/corpus/ (Stripe's OpenAPI fixtures, dj-stripe's captures).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests import corpus_helpers as c
from tests.legit_helpers import JOBS, T, event, example, query, replay


@JOBS
def test_objects_without_an_id_are_ignored_with_no_object_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    upcoming = example("invoice")
    del upcoming["id"]
    events = [
        event("balance.available", example("balance"), 1),
        event("cash_balance.funds_available", example("cash_balance"), 2),
        event("tax.settings.updated", example("tax.settings"), 3),
        event("billing.alert.triggered", example("billing.alert_triggered"), 4),
        event(
            "entitlements.active_entitlement_summary.updated",
            example("entitlements.active_entitlement_summary"),
            5,
        ),
        event("customer.discount.created", example("discount", "2017"), 6),
        event("invoice.upcoming", upcoming, 7),
    ]
    assert all("id" not in e["data"]["object"] for e in events)
    code, report = replay(tmp_path, monkeypatch, jobs, events)
    assert code == 0
    assert {(e["outcome"], e["reason"]) for e in report["events"]} == {("ignored", "unhandled event type")}
    assert query(tmp_path, "SELECT DISTINCT object_id, outcome FROM events") == [(None, "ignored")]


@JOBS
def test_a_mirrored_type_still_needs_an_object_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    sub = example("subscription")
    del sub["id"]
    code, report = replay(tmp_path, monkeypatch, jobs, [event("customer.subscription.updated", sub, 1)])
    assert code == 1
    assert [(e["outcome"], e["reason"]) for e in report["events"]] == [("rejected", "malformed")]


@JOBS
def test_an_invoice_from_before_2018_11_08_gets_its_status_and_a_paid_one_is_not_in_dunning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    inv = example("invoice", "2017")  # paid, closed, attempt_count 1, a retry date, no status
    assert "status" not in inv and inv["paid"] is True and inv["attempt_count"] == 1
    sub = example("subscription", "2017")
    sub["id"] = inv["subscription"]
    forgiven = {**copy.deepcopy(inv), "id": "in_forgiven", "forgiven": True}
    unpaid = {**copy.deepcopy(inv), "id": "in_unpaid", "paid": False, "closed": False}
    events = [
        event("customer.subscription.created", sub, 1),
        event("invoice.payment_succeeded", inv, 2),
        event("invoice.payment_failed", forgiven, 3),
        event("invoice.payment_failed", unpaid, 4),
    ]
    code, report = replay(tmp_path, monkeypatch, jobs, events[:2])
    assert code == 0
    assert report["subscriptions"][0]["dunning"] is None
    code, _ = replay(tmp_path, monkeypatch, jobs, events, db="all.db")
    assert code == 0
    statuses = dict(query(tmp_path, "SELECT id, status FROM invoices", db="all.db"))
    assert statuses == {inv["id"]: "paid", "in_forgiven": "uncollectible", "in_unpaid": "open"}


def _three_d_secure_attempt(ids: tuple[str, str]) -> list[dict[str, Any]]:
    inv = example("invoice")
    inv.update(status="open", attempt_count=1, next_payment_attempt=None, paid=False)
    sub = example("subscription")
    inv["parent"] = {"type": "subscription_details", "subscription_details": {"subscription": sub["id"]}}
    failed = event("invoice.payment_failed", inv, 2, created=T + 5)
    action = event("invoice.payment_action_required", copy.deepcopy(inv), 3, created=T + 5)
    failed["id"], action["id"] = ids
    return [event("customer.subscription.created", sub, 1), failed, action]


@JOBS
@pytest.mark.parametrize(
    "ids", [("evt_a", "evt_b"), ("evt_b", "evt_a")], ids=["action-id-last", "failed-id-last"]
)
def test_action_required_does_not_depend_on_event_id_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str, ids: tuple[str, str]
) -> None:
    events = _three_d_secure_attempt(ids)
    code, report = replay(tmp_path, monkeypatch, jobs, events)
    assert code == 0
    assert report["subscriptions"][0]["dunning"]["action_required"] is True
    # Delivered in two runs, in either order: the same answer.
    for n, order in enumerate(([events[0], events[1]], [events[2]]), 1):
        replay(tmp_path, monkeypatch, jobs, c.write_jsonl(tmp_path / f"part{n}.jsonl", order), db="split.db")
    for n, order in enumerate(([events[0], events[2]], [events[1]]), 1):
        replay(tmp_path, monkeypatch, jobs, c.write_jsonl(tmp_path / f"rev{n}.jsonl", order), db="rev.db")
    for db in ("m.db", "split.db", "rev.db"):
        assert query(tmp_path, "SELECT action_required FROM invoices", db=db) == [(1,)], db


@JOBS
def test_a_later_paid_invoice_clears_action_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    events = _three_d_secure_attempt(("evt_a", "evt_b"))
    paid = copy.deepcopy(events[1]["data"]["object"])
    paid.update(status="paid", amount_paid=paid["amount_due"])
    events.append(event("invoice.paid", paid, 9, created=T + 60))
    code, report = replay(tmp_path, monkeypatch, jobs, events)
    assert code == 0 and report["subscriptions"][0]["dunning"] is None
    assert query(tmp_path, "SELECT action_required, status FROM invoices") == [(0, "paid")]


@pytest.mark.parametrize("paid", [False, True])
def test_a_three_d_secure_attempt_in_every_order_and_chunking_gives_one_answer(
    tmp_path: Path, paid: bool
) -> None:
    """All orders of (subscription, payment_failed, payment_action_required
    [, invoice.paid]), both event-id orders, one chunk or one delivery a chunk."""
    import itertools

    from stripectl.services.replay import ReplayOptions
    from stripectl.services.replay import replay as replay_service
    from stripectl.store import open_store
    from stripectl.webhooks.delivery import Delivery

    answers = set()
    for ids in (("evt_a", "evt_b"), ("evt_b", "evt_a")):
        events = _three_d_secure_attempt(ids)
        if paid:
            inv = copy.deepcopy(events[1]["data"]["object"])
            inv.update(status="paid", amount_paid=inv["amount_due"])
            events.append(event("invoice.paid", inv, 9, created=T + 60))
        for n, order in enumerate(itertools.permutations(events)):
            for chunk in (1, 100):
                store = open_store(str(tmp_path / f"{ids[0]}-{n}-{chunk}.db"))
                try:
                    deliveries = [
                        Delivery(
                            source="t",
                            body=env["body"].encode(),
                            headers=env["headers"],
                            received_at=env["received_at"],
                        )
                        for env in map(c.signed, order)
                    ]
                    replay_service(store, deliveries, ReplayOptions(secrets=[c.SECRET]), chunk_size=chunk)
                    answers.add(
                        tuple(
                            store.conn.execute(
                                "SELECT status, action_required, last_failure_at FROM invoices"
                            ).fetchall()
                        )
                    )
                finally:
                    store.close()
    expected = ("paid", 0, T + 5) if paid else ("open", 1, T + 5)
    assert answers == {(expected,)}


@JOBS
@pytest.mark.parametrize(
    "settle", [("invoice.voided", "void"), ("invoice.marked_uncollectible", "uncollectible")]
)
def test_a_voided_or_uncollectible_invoice_leaves_dunning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str, settle: tuple[str, str]
) -> None:
    events = _three_d_secure_attempt(("evt_a", "evt_b"))
    inv = copy.deepcopy(events[1]["data"]["object"])
    inv.update(status=settle[1], next_payment_attempt=None)
    events.append(event(settle[0], inv, 9, created=T + 60))
    code, report = replay(tmp_path, monkeypatch, jobs, events[:3], db="before.db")
    assert code == 0 and report["subscriptions"][0]["dunning"] is not None
    code, report = replay(tmp_path, monkeypatch, jobs, c.write_jsonl(tmp_path / "all.jsonl", events))
    assert code == 0 and report["subscriptions"][0]["dunning"] is None
    assert query(tmp_path, "SELECT status, action_required FROM invoices") == [(settle[1], 0)]
