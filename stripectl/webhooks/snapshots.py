"""Stripe objects (plain dicts, any API version) -> mirror rows.

One place knows both payload shapes: basil and later (`items.data[].price`,
`items.data[].current_period_end`, `invoice.parent.subscription_details`) and
the older ones (`plan`, top-level `current_period_end`, `invoice.subscription`).
Webhook replay, sync and reconcile all build rows here, so they agree.
"""

from __future__ import annotations

from typing import Any

from stripectl.json_text import canonical
from stripectl.redact import redact


def _id(value: Any) -> str | None:
    """An expandable field: either an id string or an object with an id.
    Anything else is no id (Stripe's ids are strings; str() of a number would
    store whatever the JSON parser made of it)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _json(value: Any) -> str:
    return canonical(value or {})


def _metadata(value: Any) -> str:
    """Metadata as stored in every mirror table: values that look like keys or
    client secrets are masked by the same rule (redact()) the ledger applies to
    the request params, so the ledger and `payment_intents` never disagree."""
    return redact(canonical(value or {}))


def subscription_items(sub: dict[str, Any]) -> list[dict[str, Any]]:
    items = sub.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    out: list[dict[str, Any]] = []
    for item in data or []:
        price = _id(item.get("price")) or _id(item.get("plan"))
        out.append(
            {
                "price": price,
                "quantity": item.get("quantity"),
                "current_period_end": item.get("current_period_end"),
            }
        )
    if not out and sub.get("plan") is not None:
        # Pre-items shape (and localstripe): one plan at the top level.
        out.append(
            {
                "price": _id(sub.get("plan")),
                "quantity": sub.get("quantity"),
                "current_period_end": sub.get("current_period_end"),
            }
        )
    return out


def subscription_row(sub: dict[str, Any]) -> dict[str, Any]:
    """The mirror's columns for one subscription snapshot (no event bookkeeping)."""
    items = subscription_items(sub)
    ends = [i["current_period_end"] for i in items if i.get("current_period_end") is not None]
    period_end = sub.get("current_period_end")
    if period_end is None and ends:
        period_end = max(ends)
    prices = sorted({i["price"] for i in items if i.get("price")})
    quantity = sum(int(i["quantity"] or 0) for i in items) if items else sub.get("quantity")
    metadata = sub.get("metadata") or {}
    return {
        "id": sub["id"],
        "customer": _id(sub.get("customer")),
        "status": sub.get("status"),
        "price": ",".join(prices) if prices else None,
        "quantity": quantity,
        "items": canonical(items),
        "current_period_end": period_end,
        "cancel_at_period_end": int(bool(sub.get("cancel_at_period_end"))),
        "trial_end": sub.get("trial_end"),
        "canceled_at": sub.get("canceled_at"),
        "metadata": _metadata(metadata),
        "user_id": metadata.get("user_id"),
        "plan_name": metadata.get("plan_name"),
        "livemode": int(bool(sub.get("livemode"))),
    }


def invoice_subscription(inv: dict[str, Any]) -> str | None:
    """basil+: parent.subscription_details.subscription; before: subscription."""
    parent = inv.get("parent")
    if isinstance(parent, dict):
        details = parent.get("subscription_details")
        if isinstance(details, dict) and details.get("subscription"):
            return _id(details["subscription"])
    return _id(inv.get("subscription"))


def invoice_status(inv: dict[str, Any]) -> Any:
    """`status`; before API version 2018-11-08 invoices had none, only the
    booleans `forgiven` (now the `uncollectible` status; a forgiven invoice
    was also `paid`), `paid` and `closed` (no more automatic attempts: still
    open)."""
    status = inv.get("status")
    if status is not None or not ("paid" in inv or "forgiven" in inv or "closed" in inv):
        return status
    if inv.get("forgiven") is True:
        return "uncollectible"
    if inv.get("paid") is True:
        return "paid"
    return "open"


def invoice_row(inv: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": inv["id"],
        "customer": _id(inv.get("customer")),
        "subscription": invoice_subscription(inv),
        "status": invoice_status(inv),
        "amount_due": inv.get("amount_due"),
        "amount_paid": inv.get("amount_paid"),
        "currency": inv.get("currency"),
        "attempt_count": inv.get("attempt_count"),
        "next_payment_attempt": inv.get("next_payment_attempt"),
        "billing_reason": inv.get("billing_reason"),
        "livemode": int(bool(inv.get("livemode"))),
    }


def customer_row(cus: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": cus["id"],
        "email": cus.get("email"),
        "name": cus.get("name"),
        "metadata": _metadata(cus.get("metadata")),
        "deleted": int(bool(cus.get("deleted"))),
        "livemode": int(bool(cus.get("livemode"))),
    }


def checkout_session_row(cs: dict[str, Any]) -> dict[str, Any]:
    metadata = cs.get("metadata") or {}
    return {
        "id": cs["id"],
        "mode": cs.get("mode"),
        "status": cs.get("status"),
        "payment_status": cs.get("payment_status"),
        "customer": _id(cs.get("customer")),
        "customer_email": cs.get("customer_email")
        or (cs.get("customer_details") or {}).get("email"),
        "client_reference_id": cs.get("client_reference_id"),
        "user_id": metadata.get("user_id") or cs.get("client_reference_id"),
        "plan_name": metadata.get("plan_name"),
        "subscription": _id(cs.get("subscription")),
        "payment_intent": _id(cs.get("payment_intent")),
        "url": cs.get("url"),
        "metadata": _metadata(metadata),
        "expires_at": cs.get("expires_at"),
        "created": cs.get("created"),
        "livemode": int(bool(cs.get("livemode"))),
    }


def payment_intent_row(pi: dict[str, Any]) -> dict[str, Any]:
    err = pi.get("last_payment_error") or {}
    return {
        "id": pi["id"],
        "status": pi.get("status"),
        "amount": pi.get("amount"),
        "currency": pi.get("currency"),
        "customer": _id(pi.get("customer")),
        "metadata": _metadata(pi.get("metadata")),
        "last_error_code": err.get("decline_code") or err.get("code"),
        "livemode": int(bool(pi.get("livemode"))),
    }
