"""The idempotent fake (tests/fakes/idempotent.py) with charges, refunds,
capture and cancel, following Stripe's documented rules:

* a confirmed intent gets a charge (`latest_charge`); with
  `capture_method=manual` it stops at `requires_capture` with
  `amount_capturable` = amount and an uncaptured charge;
* POST /v1/refunds (`payment_intent`, optional `amount`, `reason`,
  `metadata`): refused 400 unless amount <= amount_captured - amount_refunded
  of the latest charge ("Refund amount (...) is greater than unrefunded
  amount on charge (...)"), or when nothing was captured;
* POST /v1/payment_intents/:id/capture (`amount_to_capture`): only in
  `requires_capture`, amount <= amount_capturable;
* POST /v1/payment_intents/:id/cancel (`cancellation_reason`): only in
  requires_payment_method / requires_capture / requires_confirmation /
  requires_action (processing is the rare case this fake leaves out); a
  canceled authorisation releases amount_capturable;
* GET /v1/payment_intents/:id (with `expand[]=latest_charge`),
  GET /v1/refunds?payment_intent=..., GET /v1/charges/:id.

Every POST goes through the parent's idempotency handling (saved answers,
`Idempotent-Replayed: true`, 400 `idempotency_error` on other params, 409
while in flight, faults). Sources: docs.stripe.com/api/refunds/create,
/api/payment_intents/capture, /api/payment_intents/cancel,
/payments/place-a-hold-on-a-payment-method.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from tests.fakes.base import Request, Response, error
from tests.fakes.idempotent import IdempotentStripe

_ACTION = re.compile(r"^/v1/payment_intents/([^/]+)/(capture|cancel)$")
CANCELABLE = {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"}


def _bad(message: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return 400, {"error": {"type": "invalid_request_error", "message": message, **extra}}


class RefundingStripe(IdempotentStripe):
    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}

    # --- test helpers ---------------------------------------------------------

    def seed_payment(
        self, amount: int = 1000, *, currency: str = "usd", manual: bool = False
    ) -> str:
        """A confirmed card payment (captured, or authorised only with `manual`)."""
        form = {"amount": str(amount), "currency": currency, "payment_method": "pm_card_visa",
                "confirm": "true"}
        if manual:
            form["capture_method"] = "manual"
        status, pi = self._payment_intent(form)
        assert status == 200
        return str(pi["id"])

    def fail_refund(self, refund_id: str, reason: str = "expired_or_canceled_card") -> dict[str, Any]:
        """What Stripe does when the bank returns a refund: failed, amount given back."""
        with self.lock:
            refund = self.refunds[refund_id]
            refund["status"], refund["failure_reason"] = "failed", reason
            charge = self.charges[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
            return copy.deepcopy(refund)

    # --- routing --------------------------------------------------------------

    def route(self, req: Request) -> Response:
        if req.method == "POST" and (req.path == "/v1/refunds" or _ACTION.match(req.path)):
            return self._post(req)
        if req.method == "GET":
            if req.path == "/v1/refunds":
                return self._list_refunds(req)
            if req.path.startswith("/v1/charges/"):
                charge = self.charges.get(req.path.removeprefix("/v1/charges/"))
                return Response(200, charge) if charge else error(404, "No such charge",
                                                                  code="resource_missing")
            if req.path.startswith("/v1/payment_intents/"):
                pi = self.objects.get(req.path.removeprefix("/v1/payment_intents/"))
                if pi is None:
                    return error(404, "No such payment_intent", code="resource_missing")
                out = copy.deepcopy(pi)
                if "latest_charge" in (req.query.get("expand") or []) and out.get("latest_charge"):
                    out["latest_charge"] = copy.deepcopy(self.charges[out["latest_charge"]])
                return Response(200, out)
        return super().route(req)

    def _list_refunds(self, req: Request) -> Response:
        pi = req.query.get("payment_intent")
        data = [copy.deepcopy(r) for r in reversed(self.refunds.values())
                if pi is None or r["payment_intent"] == pi]
        return Response(200, {"object": "list", "url": "/v1/refunds", "has_more": False,
                              "data": data})

    # --- execution ------------------------------------------------------------

    def _execute(self, req: Request, fault: str | None) -> tuple[int, dict[str, Any]]:
        if fault in ("401", "500"):
            return super()._execute(req, fault)
        if req.path == "/v1/refunds":
            return self._refund(req.form)
        m = _ACTION.match(req.path)
        if m:
            return self._capture(m[1], req.form) if m[2] == "capture" else self._cancel(m[1], req.form)
        return super()._execute(req, fault)

    def _payment_intent(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, pi = super()._payment_intent(form)
        if status != 200:
            return status, pi
        manual = form.get("capture_method") == "manual"
        pi.update(capture_method="manual" if manual else "automatic", amount_capturable=0,
                  amount_received=0, latest_charge=None, canceled_at=None,
                  cancellation_reason=None)
        if pi["status"] == "succeeded":
            charge = self._new_charge(pi, captured=not manual)
            pi["latest_charge"] = charge["id"]
            if manual:
                pi["status"], pi["amount_capturable"] = "requires_capture", pi["amount"]
            else:
                pi["amount_received"] = pi["amount"]
        return status, copy.deepcopy(pi)

    def _new_charge(self, pi: dict[str, Any], *, captured: bool) -> dict[str, Any]:
        cid = self._next_id("ch")
        charge = {
            "id": cid, "object": "charge", "amount": pi["amount"],
            "amount_captured": pi["amount"] if captured else 0, "amount_refunded": 0,
            "captured": captured, "refunded": False, "currency": pi["currency"],
            "payment_intent": pi["id"], "status": "succeeded", "created": int(time.time()),
            "livemode": False,
        }
        self.charges[cid] = charge
        return charge

    def _refund(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        pi = self.objects.get(form.get("payment_intent", ""))
        if pi is None:
            return _bad(f"No such payment_intent: '{form.get('payment_intent')}'",
                        code="resource_missing", param="payment_intent")
        charge = self.charges.get(pi.get("latest_charge") or "")
        if charge is None or not charge["captured"]:
            return _bad(f"PaymentIntent {pi['id']} does not have a successful charge to refund.")
        left = charge["amount_captured"] - charge["amount_refunded"]
        if left <= 0:
            return _bad(f"Charge {charge['id']} has already been refunded.",
                        code="charge_already_refunded")
        amount = int(form["amount"]) if "amount" in form else left
        if amount > left:
            return _bad(f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                        f"({left})", param="amount")
        rid = self._next_id("re")
        refund = {
            "id": rid, "object": "refund", "amount": amount, "charge": charge["id"],
            "currency": charge["currency"], "created": int(time.time()), "failure_reason": None,
            "metadata": form.get("metadata") or {}, "payment_intent": pi["id"],
            "reason": form.get("reason"), "status": "succeeded", "livemode": False,
        }
        with self.lock:
            self.refunds[rid] = refund
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        return 200, copy.deepcopy(refund)

    def _capture(self, pi_id: str, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        pi = self.objects.get(pi_id)
        if pi is None:
            return _bad(f"No such payment_intent: '{pi_id}'", code="resource_missing")
        if pi["status"] != "requires_capture":
            return _bad(
                "This PaymentIntent could not be captured because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may be "
                "captured: requires_capture.", code="payment_intent_unexpected_state")
        amount = int(form.get("amount_to_capture", pi["amount_capturable"]))
        if amount > pi["amount_capturable"]:
            return _bad(f"The amount_to_capture ({amount}) is greater than amount_capturable "
                        f"({pi['amount_capturable']}).", param="amount_to_capture")
        charge = self.charges[pi["latest_charge"]]
        charge.update(captured=True, amount_captured=amount)
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return 200, copy.deepcopy(pi)

    def _cancel(self, pi_id: str, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        pi = self.objects.get(pi_id)
        if pi is None:
            return _bad(f"No such payment_intent: '{pi_id}'", code="resource_missing")
        if pi["status"] not in CANCELABLE:
            return _bad(
                "You cannot cancel this PaymentIntent because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may be "
                f"canceled: {', '.join(sorted(CANCELABLE))}.",
                code="payment_intent_unexpected_state")
        pi.update(status="canceled", amount_capturable=0, canceled_at=int(time.time()),
                  cancellation_reason=form.get("cancellation_reason"))
        return 200, copy.deepcopy(pi)
