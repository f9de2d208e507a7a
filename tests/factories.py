"""Realistic Stripe webhook payloads as plain dicts, in both API shapes.

`shape="new"` renders like api_version 2026-10-28.endive (basil and later): periods on
`items.data[]`, `invoice.parent.subscription_details`, no `invoice.subscription/paid/
payment_intent/charge`. `shape="old"` renders like 2024-06-20: top-level
`current_period_*` and `plan`, `invoice.subscription`, `invoice.paid`.

Ids are deterministic: derived from a seed when one is given, else from a module
counter (`reset_ids()` restarts it). Nothing here reads the clock.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

from stripectl.gateway import signatures

NEW_API = "2026-10-28.endive"
OLD_API = "2024-06-20"
T0 = 1793491200  # 2026-11-01T00:00:00Z
DAY = 86400
MONTH = 30 * DAY
EXAMPLE_SECRET = "whsec_stripectl_example_0000000000000000"

# price id -> (product id, product name, unit amount in cents, interval)
PRICES: dict[str, tuple[str, str, int, str]] = {
    "price_basic": ("prod_basic", "Basic", 1500, "month"),
    "price_pro": ("prod_pro", "Pro", 4900, "month"),
    "price_team": ("prod_team", "Team", 9900, "month"),
    "price_pro_yearly": ("prod_pro", "Pro", 49000, "year"),
}

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_counter = itertools.count(1)


def reset_ids() -> None:
    global _counter
    _counter = itertools.count(1)


def rid(prefix: str, *seed: object, length: int = 24) -> str:
    """A Stripe-looking id (`sub_1Q...`), stable for a given seed."""
    key = "|".join(map(str, seed)) if seed else f"#{next(_counter)}"
    n = int.from_bytes(hashlib.sha256(f"{prefix}|{key}".encode()).digest(), "big")
    chars = []
    for _ in range(length - 1):
        n, r = divmod(n, 62)
        chars.append(_B62[r])
    return f"{prefix}_1{''.join(chars)}"


def _price_parts(price_id: str) -> tuple[str, str, int, str]:
    return PRICES.get(price_id, ("prod_" + price_id.removeprefix("price_"), "Plan", 2000, "month"))


def price(price_id: str = "price_basic", *, livemode: bool = False) -> dict[str, Any]:
    product, name, amount, interval = _price_parts(price_id)
    return {
        "id": price_id, "object": "price", "active": True, "billing_scheme": "per_unit",
        "created": T0 - 90 * DAY, "currency": "usd", "custom_unit_amount": None,
        "livemode": livemode, "lookup_key": f"{name.lower()}_{interval}ly", "metadata": {},
        "nickname": f"{name} {interval}ly", "product": product,
        "recurring": {"interval": interval, "interval_count": 1, "meter": None,
                      "trial_period_days": None, "usage_type": "licensed"},
        "tax_behavior": "exclusive", "tiers_mode": None, "transform_quantity": None,
        "type": "recurring", "unit_amount": amount, "unit_amount_decimal": str(amount),
    }


def plan(price_id: str = "price_basic", *, livemode: bool = False) -> dict[str, Any]:
    product, name, amount, interval = _price_parts(price_id)
    return {
        "id": price_id, "object": "plan", "active": True, "amount": amount,
        "amount_decimal": str(amount), "billing_scheme": "per_unit", "created": T0 - 90 * DAY,
        "currency": "usd", "interval": interval, "interval_count": 1, "livemode": livemode,
        "metadata": {}, "meter": None, "nickname": f"{name} {interval}ly", "product": product,
        "tiers_mode": None, "transform_usage": None, "trial_period_days": None,
        "usage_type": "licensed",
    }


def subscription(
    id: str | None = None,
    customer: str = "cus_1StripectlExample00001",
    status: str = "active",
    price: str = "price_basic",
    quantity: int = 1,
    current_period_end: int | None = None,
    cancel_at_period_end: bool = False,
    metadata: dict[str, str] | None = None,
    shape: str = "new",
    livemode: bool = False,
    items: list[dict[str, Any]] | None = None,
    *,
    created: int = T0,
    current_period_start: int | None = None,
    latest_invoice: str | None = None,
    canceled_at: int | None = None,
    cancel_at: int | None = None,
    ended_at: int | None = None,
    trial_end: int | None = None,
    default_payment_method: str | None = "pm_1StripectlExampleCard01",
) -> dict[str, Any]:
    """`items`: [{"price": "price_pro", "quantity": 2, "id": optional si_ id}, ...]."""
    sid = id or rid("sub")
    start = current_period_start if current_period_start is not None else created
    end = current_period_end if current_period_end is not None else start + MONTH
    specs = items or [{"price": price, "quantity": quantity}]
    data = []
    for n, spec in enumerate(specs):
        pid = spec["price"]
        item: dict[str, Any] = {
            "id": spec.get("id") or rid("si", sid, n, length=14), "object": "subscription_item",
            "billing_thresholds": None, "created": created + 1, "discounts": [],
            "metadata": {}, "plan": globals()["plan"](pid, livemode=livemode),
            "price": globals()["price"](pid, livemode=livemode),
            "quantity": spec.get("quantity", 1), "subscription": sid, "tax_rates": [],
        }
        if shape == "new":
            item["current_period_end"] = end
            item["current_period_start"] = start
        data.append(item)
    sub: dict[str, Any] = {
        "id": sid, "object": "subscription", "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": created, "billing_cycle_anchor_config": None,
        "billing_thresholds": None, "cancel_at": cancel_at,
        "cancel_at_period_end": cancel_at_period_end, "canceled_at": canceled_at,
        "cancellation_details": {
            "comment": None, "feedback": None,
            "reason": "cancellation_requested" if canceled_at else None,
        },
        "collection_method": "charge_automatically", "created": created, "currency": "usd",
        "customer": customer, "days_until_due": None,
        "default_payment_method": default_payment_method, "default_source": None,
        "default_tax_rates": [], "description": None, "discounts": [], "ended_at": ended_at,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {"object": "list", "data": data, "has_more": False, "total_count": len(data),
                  "url": f"/v1/subscription_items?subscription={sid}"},
        "latest_invoice": latest_invoice, "livemode": livemode, "metadata": metadata or {},
        "next_pending_invoice_item_invoice": None, "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None, "pending_setup_intent": None,
        "pending_update": None, "schedule": None, "start_date": created, "status": status,
        "test_clock": None, "transfer_data": None, "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }
    if shape == "new":
        sub["billing_mode"] = {"flexible": None, "type": "classic", "updated_at": created}
        sub["customer_account"] = None
        sub["invoice_settings"]["account_tax_ids"] = None
    else:
        sub["current_period_end"] = end
        sub["current_period_start"] = start
        sub["plan"] = data[0]["plan"]
        sub["quantity"] = data[0]["quantity"]
        sub["discount"] = None
    return sub


def _invoice_line(inv_id: str, sub_id: str, pid: str, qty: int, start: int, end: int,
                  shape: str, livemode: bool) -> dict[str, Any]:
    _, name, amount, interval = _price_parts(pid)
    line: dict[str, Any] = {
        "id": rid("il", inv_id, length=26), "object": "line_item", "amount": amount * qty,
        "currency": "usd",
        "description": f"{qty} × {name} (at ${amount / 100:.2f} / {interval})",
        "discount_amounts": [], "discountable": True, "discounts": [], "livemode": livemode,
        "metadata": {}, "period": {"end": end, "start": start}, "quantity": qty,
    }
    si = rid("si", sub_id, 0, length=14)
    if shape == "new":
        line["invoice"] = inv_id
        line["parent"] = {
            "type": "subscription_item_details", "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None, "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub_id, "subscription_item": si,
            },
        }
        line["pretax_credit_amounts"] = []
        line["pricing"] = {"price_details": {"price": pid, "product": _price_parts(pid)[0]},
                           "type": "price_details", "unit_amount_decimal": str(amount)}
        line["taxes"] = []
    else:
        line.update({
            "amount_excluding_tax": amount * qty, "plan": plan(pid, livemode=livemode),
            "price": price(pid, livemode=livemode), "proration": False,
            "proration_details": {"credited_items": None}, "subscription": sub_id,
            "subscription_item": si, "tax_amounts": [], "tax_rates": [], "type": "subscription",
            "unit_amount_excluding_tax": str(amount),
        })
    return line


def invoice(
    id: str | None = None,
    subscription: str | None = "sub_1StripectlExample000001",
    customer: str = "cus_1StripectlExample00001",
    status: str = "paid",
    attempt_count: int = 0,
    next_payment_attempt: int | None = None,
    shape: str = "new",
    *,
    created: int = T0,
    price: str = "price_basic",
    quantity: int = 1,
    period_start: int | None = None,
    period_end: int | None = None,
    billing_reason: str = "subscription_cycle",
    livemode: bool = False,
    subscription_metadata: dict[str, str] | None = None,
    email: str = "jenny.rosen@example.com",
) -> dict[str, Any]:
    iid = id or rid("in")
    _, _, amount, _ = _price_parts(price)
    total = amount * quantity
    paid = status == "paid"
    start = period_start if period_start is not None else created
    end = period_end if period_end is not None else start + MONTH
    line_sub = subscription or ""
    inv: dict[str, Any] = {
        "id": iid, "object": "invoice", "account_country": "US",
        "account_name": "Stripectl Example Inc.", "account_tax_ids": None,
        "amount_due": total, "amount_overpaid": 0, "amount_paid": total if paid else 0,
        "amount_remaining": 0 if paid else total, "amount_shipping": 0, "application": None,
        "attempt_count": attempt_count, "attempted": attempt_count > 0,
        "auto_advance": not paid and status != "void",
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                          "provider": None, "status": None},
        "billing_reason": billing_reason, "collection_method": "charge_automatically",
        "created": created, "currency": "usd", "custom_fields": None, "customer": customer,
        "customer_address": None, "customer_email": email, "customer_name": None,
        "customer_phone": None, "customer_shipping": None, "customer_tax_exempt": "none",
        "customer_tax_ids": [], "default_payment_method": None, "default_source": None,
        "default_tax_rates": [], "description": None, "discounts": [], "due_date": None,
        "effective_at": created + 3600, "ending_balance": 0, "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_1Example/test_{iid[3:]}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_1Example/test_{iid[3:]}/pdf",
        "issuer": {"type": "self"}, "last_finalization_error": None, "latest_revision": None,
        "lines": {"object": "list", "has_more": False, "total_count": 1,
                  "url": f"/v1/invoices/{iid}/lines",
                  "data": [_invoice_line(iid, line_sub, price, quantity, start, end, shape,
                                         livemode)]},
        "livemode": livemode, "metadata": {}, "next_payment_attempt": next_payment_attempt,
        "number": f"EX{iid[-6:].upper()}-0001", "on_behalf_of": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": start, "period_start": start - MONTH,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "receipt_number": None, "rendering": None, "shipping_cost": None,
        "shipping_details": None, "starting_balance": 0, "statement_descriptor": None,
        "status": status,
        "status_transitions": {"finalized_at": created + 3600, "marked_uncollectible_at": None,
                               "paid_at": created + 3600 if paid else None, "voided_at": None},
        "subtotal": total, "subtotal_excluding_tax": total, "test_clock": None, "total": total,
        "total_discount_amounts": [], "total_excluding_tax": total, "webhooks_delivered_at":
        created,
    }
    if shape == "new":
        inv["customer_account"] = None
        inv["parent"] = None if subscription is None else {
            "type": "subscription_details", "quote_details": None,
            "subscription_details": {"metadata": subscription_metadata or {},
                                     "subscription": subscription},
        }
        inv["total_pretax_credit_amounts"] = []
        inv["total_taxes"] = []
    else:
        inv.update({
            "subscription": subscription, "paid": paid, "paid_out_of_band": False,
            "payment_intent": rid("pi", iid), "charge": rid("ch", iid) if attempt_count else None,
            "subscription_details": {"metadata": subscription_metadata or {}},
            "tax": None, "total_tax_amounts": [], "discount": None, "quote": None,
        })
    return inv


def customer(id: str | None = None, *, email: str = "jenny.rosen@example.com",
             name: str | None = "Jenny Rosen", created: int = T0,
             metadata: dict[str, str] | None = None, livemode: bool = False) -> dict[str, Any]:
    cid = id or rid("cus", length=15)
    return {
        "id": cid, "object": "customer", "address": None, "balance": 0, "created": created,
        "currency": None, "default_source": None, "delinquent": False, "description": None,
        "discount": None, "email": email, "invoice_prefix": cid[-8:].upper(),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                             "footer": None, "rendering_options": None},
        "livemode": livemode, "metadata": metadata or {}, "name": name,
        "next_invoice_sequence": 1, "phone": None, "preferred_locales": ["en-US"],
        "shipping": None, "tax_exempt": "none", "test_clock": None,
    }


def checkout_session(
    id: str | None = None,
    mode: str = "subscription",
    subscription: str | None = None,
    payment_intent: str | None = None,
    client_reference_id: str | None = "user_42",
    metadata: dict[str, str] | None = None,
    payment_status: str = "paid",
    status: str = "complete",
    *,
    customer: str | None = "cus_1StripectlExample00001",
    amount_total: int = 1500,
    email: str = "jenny.rosen@example.com",
    created: int = T0,
    livemode: bool = False,
) -> dict[str, Any]:
    csid = id or rid("cs_test", length=58)
    return {
        "id": csid, "object": "checkout.session", "adaptive_pricing": {"enabled": True},
        "after_expiration": None, "allow_promotion_codes": None,
        "amount_subtotal": amount_total, "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None,
                          "status": None},
        "billing_address_collection": None, "cancel_url": "https://example.com/cancel",
        "client_reference_id": client_reference_id, "client_secret": None,
        "collected_information": None, "consent": None, "consent_collection": None,
        "created": created, "currency": "usd", "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": customer, "customer_creation": "always",
        "customer_details": {"address": None, "email": email, "name": "Jenny Rosen",
                             "phone": None, "tax_exempt": "none", "tax_ids": []},
        "customer_email": None, "discounts": [], "expires_at": created + DAY,
        "invoice": None, "invoice_creation": None, "livemode": livemode, "locale": None,
        "metadata": metadata or {}, "mode": mode, "payment_intent": payment_intent,
        "payment_link": None, "payment_method_collection": "always",
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "payment_status": payment_status,
        "phone_number_collection": {"enabled": False}, "recovered_from": None,
        "setup_intent": None, "shipping_address_collection": None, "shipping_cost": None,
        "shipping_options": [], "status": status, "submit_type": None,
        "subscription": subscription,
        "success_url": "https://example.com/success?session_id={CHECKOUT_SESSION_ID}",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted", "url": None,
    }


def payment_intent(id: str | None = None, *, amount: int = 1500, status: str = "succeeded",
                   customer: str | None = "cus_1StripectlExample00001",
                   metadata: dict[str, str] | None = None, created: int = T0,
                   decline_code: str | None = None, livemode: bool = False) -> dict[str, Any]:
    pid = id or rid("pi")
    error = None if decline_code is None else {
        "code": "card_declined", "decline_code": decline_code, "type": "card_error",
        "message": "Your card was declined.", "payment_method": {"id": "pm_1ExampleCard"},
    }
    return {
        "id": pid, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount if status == "succeeded" else 0, "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
        "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic",
        # Obviously fake: real client secrets never belong in fixtures.
        "client_secret": f"{pid}_secret_stripectlfake", "confirmation_method": "automatic",
        "created": created, "currency": "usd", "customer": customer, "description": None,
        "last_payment_error": error, "latest_charge": rid("ch", pid), "livemode": livemode,
        "metadata": metadata or {}, "next_action": None, "on_behalf_of": None,
        "payment_method": "pm_1StripectlExampleCard01", "payment_method_options": {"card": {
            "installments": None, "mandate_options": None, "network": None,
            "request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "processing": None, "receipt_email": None,
        "review": None, "setup_future_usage": None, "shipping": None, "source": None,
        "statement_descriptor": None, "statement_descriptor_suffix": None, "status": status,
        "transfer_data": None, "transfer_group": None,
    }


def _infer_api_version(obj: dict[str, Any]) -> str:
    old_marks = ("current_period_end", "plan", "paid", "subscription_details")
    if obj.get("object") in ("subscription", "invoice") and any(k in obj for k in old_marks):
        return OLD_API
    return NEW_API


def event(type: str, obj: dict[str, Any], *, id: str | None = None, created: int | None = None,
          previous_attributes: dict[str, Any] | None = None, livemode: bool | None = None,
          api_version: str | None = None, request_id: str | None = None,
          idempotency_key: str | None = None, pending_webhooks: int = 1) -> dict[str, Any]:
    """The Stripe event envelope. `api_version` defaults from the object's shape.

    `request_id=None` renders an automatic event (renewals, retries: request.id null).
    """
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": id or rid("evt"), "object": "event",
        "api_version": api_version or _infer_api_version(obj),
        "created": created if created is not None else int(obj.get("created") or T0),
        "data": data,
        "livemode": bool(obj.get("livemode")) if livemode is None else livemode,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": type,
    }


def body_of(evt: dict[str, Any]) -> str:
    """The raw body as Stripe sends it would be any JSON; we use compact separators."""
    return json.dumps(evt, separators=(",", ":"))


def sign(body: str, secret: str = EXAMPLE_SECRET, t: int = T0) -> str:
    return signatures.sign(body, secret, t)


def envelope(event_or_body: dict[str, Any] | str, secret: str = EXAMPLE_SECRET, *, t: int,
             received_at: int | None = None) -> dict[str, Any]:
    """A saved delivery; `received_at` defaults to 1 s after the signature (fresh)."""
    body = event_or_body if isinstance(event_or_body, str) else body_of(event_or_body)
    return {"received_at": t + 1 if received_at is None else received_at,
            "headers": {"Stripe-Signature": sign(body, secret, t)}, "body": body}


def lifecycle(sub_id: str, customer: str, start: int = T0, **kwargs: Any) -> list[dict[str, Any]]:
    """A valid subscription history as events; see tests/factories_lifecycle.py."""
    from tests.factories_lifecycle import build_lifecycle

    return build_lifecycle(sub_id, customer, start, **kwargs)
