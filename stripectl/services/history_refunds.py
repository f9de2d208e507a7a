"""A payment's refunds for `stripectl history pi_...` (services/history.py).

`refunds_section` is a history section provider: `(store, subject) ->
Section | None`, appended to history.SECTIONS. It lists the refunds of every
payment intent the subject relates to, with the intent's money as the
mirror derives it (webhooks/refunds.py), so "why is this customer's refund
not there?" is answered next to the deliveries.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from stripectl import money
from stripectl.store import Store, mirror
from stripectl.store import refunds as store_refunds
from stripectl.webhooks.refunds import money_of

COLUMNS = [
    ("payment_intent", "payment"), ("id", "refund"), ("status", "status"),
    ("amount_display", "amount"),
    ("refund_ref", "ref"), ("failure_reason", "failure"), ("last_event_type", "last event"),
    ("last_event_created", "as of"),
]


def refund_rows(store: Store, intents: list[str]) -> list[dict[str, Any]]:
    """One row per refund of each intent (oldest first), then one summary row
    per intent (`id` None) with what it captured and refunded."""
    rows: list[dict[str, Any]] = []
    for pi_id in intents:
        refunds = store_refunds.refunds_of(store, pi_id)
        for r in refunds:
            rows.append({"payment_intent": pi_id, **{k: r.get(k) for k, _ in COLUMNS[1:]},
                         "amount": r.get("amount"), "currency": r.get("currency"),
                         "amount_display": _display(r.get("amount"), r.get("currency")),
                         "reason": r.get("reason")})
        pi = mirror.get_row(store, "payment_intents", pi_id)
        charges = store_refunds.charges_of(store, pi_id)
        if refunds or charges or (pi and pi.get("amount_refunded")):
            figures = money_of(pi, charges, refunds)
            currency = (pi or {}).get("currency") or next(
                (r["currency"] for r in refunds if r.get("currency")), None)
            rows.append({"payment_intent": pi_id, "id": None, "status": figures["refund_state"],
                         "amount": figures["amount_refunded"], "currency": currency,
                         "captured": figures["amount_captured"],
                         "amount_display": "refunded " + _display(figures["amount_refunded"], currency)
                         + " of " + _display(figures["amount_captured"], currency)})
    return rows


def _display(amount: Any, currency: Any) -> str:
    if amount is None:
        return "-"
    return money.format_amount(int(amount), str(currency)) if currency else str(amount)


def refunds_section(store: Store, subject: Any) -> Any:
    """`subject`: a history.Subject; returns a history.Section or None. (Typed
    loosely and imported by name: written beside habits' `history`, before
    both branches met on main.)"""
    section = import_module("stripectl.services.history").Section
    intents = list(subject.related.get("payment_intents", []))
    if not intents:
        return None
    rows = refund_rows(store, intents)
    return section(key="refunds", title="refunds (of the payment intents above)", columns=COLUMNS,
                   rows=rows, note=None if rows else "no refund of these payments in the mirror")
