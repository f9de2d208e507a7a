"""The `payments` section of a replay report: each payment intent the run's
money events touched, with what it captured, refunded and its refunds."""

from __future__ import annotations

from typing import Any

from stripectl.webhooks.refunds import MoneyView, money_of

REFUND_FIELDS = ("id", "status", "amount", "reason", "failure_reason", "refund_ref", "charge")


def payment_report(view: MoneyView, intents: list[str]) -> list[dict[str, Any]]:
    out = []
    for pi_id in intents:
        pi = view.get("payment_intents", pi_id)
        charges = view.rows_where("charges", "payment_intent", [pi_id])
        refunds = {r["id"]: r for r in view.rows_where("refunds", "payment_intent", [pi_id])}
        for r in view.rows_where("refunds", "charge", [c["id"] for c in charges]):
            refunds.setdefault(r["id"], r)
        ordered = sorted(refunds.values(), key=lambda r: (r.get("created") or 0, r["id"]))
        currency = (pi or {}).get("currency") or next(
            (r.get("currency") for r in ordered if r.get("currency")), None
        )
        out.append({
            "id": pi_id,
            "status": (pi or {}).get("status"),
            "amount": (pi or {}).get("amount"),
            "currency": currency,
            **money_of(pi, charges, ordered),
            "refunds": [{k: r.get(k) for k in REFUND_FIELDS} for r in ordered],
        })
    return out
