"""A complete, valid subscription history as a list of Stripe events (see `build_lifecycle`).

Kept apart from tests/factories.py only for size; use `tests.factories.lifecycle`.
"""

from __future__ import annotations

import copy
from typing import Any

from tests import factories as f


def build_lifecycle(
    sub_id: str,
    customer: str,
    start: int = f.T0,
    *,
    price: str = "price_basic",
    quantity: int = 1,
    shape: str = "new",
    user_id: str = "user_42",
    plan_name: str = "basic",
    email: str = "jenny.rosen@example.com",
    livemode: bool = False,
    same_second: bool = True,
    failed_renewal: bool = True,
    cancel: bool = True,
    payment_succeeded: bool = True,
) -> list[dict[str, Any]]:
    """Events in `created` order (ties only where previous_attributes orders them).

    customer.created -> subscription.created (incomplete) -> first invoice paid ->
    subscription.updated incomplete->active -> checkout.session.completed -> renewal ->
    failed renewal (payment_failed attempt 1, active->past_due) -> recovery
    (invoice.paid attempt 2, past_due->active) -> cancel_at_period_end -> deleted.
    With `same_second`, the subscription's created/first-updated share one second.
    `payment_succeeded=False` leaves out the invoice.payment_succeeded twin of each
    invoice.paid (smaller corpora).
    """
    api = f.NEW_API if shape == "new" else f.OLD_API
    meta = {"user_id": user_id, "plan_name": plan_name}
    amount = f.PRICES.get(price, ("", "", 2000, ""))[2] * quantity
    events: list[dict[str, Any]] = []
    step = iter(range(1000))

    def emit(kind: str, obj: dict[str, Any], created: int, prev: dict[str, Any] | None = None,
             *, automatic: bool = False) -> None:
        n = next(step)  # numbered before skipping, so ids do not depend on the options
        if kind == "invoice.payment_succeeded" and not payment_succeeded:
            return
        req = None if automatic else f.rid("req", sub_id, n, length=15)
        key = None if automatic else f"stripectl-{sub_id[-8:]}-{n}"
        events.append(f.event(kind, obj, id=f.rid("evt", sub_id, n), created=created,
                              previous_attributes=prev, livemode=livemode, api_version=api,
                              request_id=req, idempotency_key=key))

    def sub(status: str, p_start: int, p_end: int, latest: str, **kw: Any) -> dict[str, Any]:
        return f.subscription(sub_id, customer, status, price=price, quantity=quantity,
                              current_period_start=p_start, current_period_end=p_end,
                              metadata=meta, shape=shape, livemode=livemode,
                              created=start + 1, latest_invoice=latest, **kw)

    def inv(n: int, status: str, created: int, p_start: int, **kw: Any) -> dict[str, Any]:
        return f.invoice(f.rid("in", sub_id, n), sub_id, customer, status, shape=shape,
                         created=created, price=price, quantity=quantity, period_start=p_start,
                         period_end=p_start + f.MONTH, livemode=livemode, email=email,
                         subscription_metadata=meta, **kw)

    def period_prev(old: dict[str, Any]) -> dict[str, Any]:
        # What a period roll-over changes, in each shape.
        if shape == "new":
            return {"items": copy.deepcopy(old["items"]), "latest_invoice": old["latest_invoice"]}
        return {"current_period_end": old["current_period_end"],
                "current_period_start": old["current_period_start"],
                "latest_invoice": old["latest_invoice"]}

    t_sub = start + 1
    t_act = t_sub if same_second else t_sub + 1
    p1 = t_sub + f.MONTH
    in1 = f.rid("in", sub_id, 1)
    emit("customer.created", f.customer(customer, email=email, created=start, livemode=livemode,
                                        metadata={"user_id": user_id}), start)
    emit("customer.subscription.created", sub("incomplete", t_sub, p1, in1), t_sub)
    first = inv(1, "paid", t_sub, t_sub, attempt_count=1, billing_reason="subscription_create")
    emit("invoice.paid", first, t_act)
    emit("invoice.payment_succeeded", first, t_act)
    active = sub("active", t_sub, p1, in1)
    emit("customer.subscription.updated", active, t_act, {"status": "incomplete"})
    emit("checkout.session.completed",
         f.checkout_session(f.rid("cs_test", sub_id, length=58), "subscription", sub_id, None,
                            user_id, meta, "paid", "complete", customer=customer,
                            amount_total=amount, email=email, created=start - 60,
                            livemode=livemode), t_act + 2)

    # Renewal: the period rolls at p1, the new invoice is paid an hour later.
    p2 = p1 + f.MONTH
    in2 = f.rid("in", sub_id, 2)
    renewed = sub("active", p1, p2, in2)
    emit("customer.subscription.updated", renewed, p1, period_prev(active), automatic=True)
    second = inv(2, "paid", p1, p1, attempt_count=1)
    emit("invoice.paid", second, p1 + 3600, automatic=True)
    emit("invoice.payment_succeeded", second, p1 + 3600, automatic=True)
    current, p_start, p_end = renewed, p1, p2

    if failed_renewal:
        p3 = p2 + f.MONTH
        in3 = f.rid("in", sub_id, 3)
        rolled = sub("active", p2, p3, in3)
        emit("customer.subscription.updated", rolled, p2, period_prev(renewed), automatic=True)
        fail_at = p2 + 3600
        retry_at = fail_at + 3 * f.DAY
        emit("invoice.payment_failed",
             inv(3, "open", p2, p2, attempt_count=1, next_payment_attempt=retry_at), fail_at,
             automatic=True)
        past_due = sub("past_due", p2, p3, in3)
        emit("customer.subscription.updated", past_due, fail_at, {"status": "active"},
             automatic=True)
        third = inv(3, "paid", p2, p2, attempt_count=2)
        emit("invoice.paid", third, retry_at, automatic=True)
        emit("invoice.payment_succeeded", third, retry_at, automatic=True)
        current = sub("active", p2, p3, in3)
        emit("customer.subscription.updated", current, retry_at, {"status": "past_due"},
             automatic=True)
        p_start, p_end = p2, p3

    if cancel:
        asked = p_start + 10 * f.DAY
        latest = current["latest_invoice"]
        pending = sub("active", p_start, p_end, latest, cancel_at_period_end=True,
                      cancel_at=p_end, canceled_at=asked)
        emit("customer.subscription.updated", pending, asked,
             {"cancel_at": None, "cancel_at_period_end": False, "canceled_at": None,
              "cancellation_details": {"reason": None}})
        ended = sub("canceled", p_start, p_end, latest, cancel_at_period_end=True,
                    cancel_at=p_end, canceled_at=asked, ended_at=p_end)
        emit("customer.subscription.deleted", ended, p_end, automatic=True)
    return events
