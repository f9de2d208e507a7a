"""Refund and charge payloads in the shapes Stripe has sent over the years.

* `shape="new"` (2022-11-15 and later, e.g. 2026-10-28.endive): a Charge's
  `refunds` is not expanded (absent), a PaymentIntent has `latest_charge` (an
  id) and no `charges`.
* `shape="old"` (before 2022-11-15, e.g. 2020-08-27): a Charge embeds its
  refunds as a list object, a PaymentIntent embeds its charges the same way.
"""

from __future__ import annotations

from typing import Any

from tests import factories as f

OLD_PI_API = "2020-08-27"


def refund(id: str, *, payment_intent: str | None, charge: str, amount: int,
           status: str = "succeeded", created: int = f.T0, refund_ref: str | None = None,
           failure_reason: str | None = None, reason: str | None = "requested_by_customer",
           currency: str = "usd") -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": id, "object": "refund", "amount": amount, "balance_transaction": f.rid("txn", id),
        "charge": charge, "created": created, "currency": currency,
        "destination_details": {"card": {"reference_status": "pending", "type": "refund"},
                                "type": "card"},
        "failure_balance_transaction": f.rid("txn", id, "f") if status == "failed" else None,
        "failure_reason": failure_reason, "metadata": {"refund_ref": refund_ref} if refund_ref else {},
        "reason": reason, "receipt_number": None, "source_transfer_reversal": None,
        "status": status, "transfer_reversal": None,
    }
    if payment_intent is not None:  # refunds of very old charges carry no payment_intent
        out["payment_intent"] = payment_intent
    return out


def charge(id: str, *, payment_intent: str, amount: int, amount_refunded: int = 0,
           refunds: list[dict[str, Any]] | None = None, shape: str = "new",
           created: int = f.T0, captured: bool = True, currency: str = "usd") -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": id, "object": "charge", "amount": amount,
        "amount_captured": amount if captured else 0, "amount_refunded": amount_refunded,
        "balance_transaction": f.rid("txn", id), "captured": captured, "created": created,
        "currency": currency, "customer": "cus_1StripectlExample00001", "disputed": False,
        "livemode": False, "metadata": {}, "paid": True, "payment_intent": payment_intent,
        "payment_method": "pm_1StripectlExampleCard01",
        "refunded": bool(captured and amount_refunded >= amount), "status": "succeeded",
    }
    if shape == "old":
        data = refunds or []
        out["refunds"] = {"object": "list", "data": data, "has_more": False,
                          "total_count": len(data), "url": f"/v1/charges/{id}/refunds"}
    return out


def payment_intent(id: str, *, amount: int, charge_obj: dict[str, Any] | None = None,
                   shape: str = "new", status: str = "succeeded", created: int = f.T0,
                   capture_method: str = "automatic", amount_capturable: int = 0) -> dict[str, Any]:
    pi = f.payment_intent(id, amount=amount, status=status, created=created)
    pi.update(capture_method=capture_method, amount_capturable=amount_capturable)
    if status != "succeeded":
        pi["amount_received"] = 0
    if shape == "old":
        pi.pop("latest_charge", None)
        data = [charge_obj] if charge_obj else []
        pi["charges"] = {"object": "list", "data": data, "has_more": False,
                         "total_count": len(data), "url": f"/v1/charges?payment_intent={id}"}
    elif charge_obj is not None:
        pi["latest_charge"] = charge_obj["id"]
    return pi


def event(type: str, obj: dict[str, Any], *, created: int, shape: str = "new",
          previous_attributes: dict[str, Any] | None = None, id: str | None = None,
          livemode: bool | None = None) -> dict[str, Any]:
    return f.event(type, obj, created=created, id=id or f.rid("evt", type, obj["id"], created),
                   previous_attributes=previous_attributes, livemode=livemode,
                   api_version=f.NEW_API if shape == "new" else OLD_PI_API)
