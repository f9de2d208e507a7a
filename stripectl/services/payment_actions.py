"""`payments capture`, `payments cancel` and `payments show`.

Capture and cancel go through the ledger like every money mutation. Their
key is derived from the payment intent and the action
(`stripectl:capture:<sha256(pi)[:32]>`): an intent is captured once and
canceled once, so a re-run of either replays Stripe's first answer. The
ledger's params hold the intent too (it travels in the URL, not the form),
so the row says which payment it was about.

`show` answers from the mirror alone: the intent, its charges and refunds,
and the ledger rows that touched it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stripectl import money
from stripectl.errors import UsageError
from stripectl.gateway.client import Gateway
from stripectl.gateway.refunds import cancel_payment_intent, capture_payment_intent
from stripectl.services import ledger
from stripectl.services.payments import ACCESS_NOTE, Mutation, run_mutation
from stripectl.store import Store, mirror
from stripectl.store import refunds as store_refunds
from stripectl.webhooks.refunds import money_of, payment_intent_columns

CANCEL_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
ACTIONS = {
    "capture": ("payment_intent.capture", "payment intent capture"),
    "cancel": ("payment_intent.cancel", "payment intent cancel"),
}


def _intent(value: str) -> str:
    pi = value.strip()
    if not pi.startswith("pi_") or len(pi) > 255:
        raise UsageError(f"{value!r} is not a payment intent id (pi_...)")
    return pi


def prepare_action(
    action: str, intent: str, *, amount: int | None = None, reason: str | None = None
) -> tuple[str, dict[str, Any]]:
    """(key, ledger params) for a capture or a cancel; no store, no network."""
    pi = _intent(intent)
    params: dict[str, Any] = {"payment_intent": pi}
    if action == "capture":
        if amount is not None:
            params["amount_to_capture"] = money.parse_amount(amount)
    elif action == "cancel":
        if reason is not None and reason not in CANCEL_REASONS:
            raise UsageError(f"--reason must be one of {', '.join(CANCEL_REASONS)}, got {reason!r}")
        if reason:
            params["cancellation_reason"] = reason
    else:  # pragma: no cover - the CLI only offers the two
        raise ValueError(action)
    return ledger.derive_key(action, pi), params


@dataclass
class ActionResult:
    action: str
    obj: dict[str, Any] = field(repr=False)
    idempotency_key: str
    replayed: bool
    attempt: int
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        o = self.obj
        currency = str(o.get("currency") or "")
        out: dict[str, Any] = {
            "object": "payment_intent",
            "action": self.action,
            "id": o.get("id"),
            "status": o.get("status"),
            "provisional": True,
            "amount": o.get("amount"),
            "amount_capturable": o.get("amount_capturable"),
            "amount_received": o.get("amount_received"),
            "currency": currency,
            "amount_display": money.format_amount(int(o.get("amount") or 0), currency),
            "cancellation_reason": o.get("cancellation_reason"),
            "livemode": bool(o.get("livemode")),
            "idempotency_key": self.idempotency_key,
            "replayed": self.replayed,
            "attempt": self.attempt,
            "access_note": ACCESS_NOTE,
            "warnings": self.warnings,
        }
        return out


def run_action(
    store: Store,
    gw: Gateway,
    action: str,
    intent: str,
    *,
    amount: int | None = None,
    reason: str | None = None,
    options: ledger.LedgerOptions,
    clock: ledger.Clock | None = None,
    sleep: Callable[[float], None] | None = None,
    notify: ledger.Notify | None = None,
) -> ActionResult:
    key, params = prepare_action(action, intent, amount=amount, reason=reason)
    operation, noun = ACTIONS[action]
    send_fn = capture_payment_intent if action == "capture" else cancel_payment_intent

    def send(p: dict[str, Any], k: str) -> Any:
        form = {name: value for name, value in p.items() if name != "payment_intent"}
        return send_fn(gw, p["payment_intent"], form, idempotency_key=k)

    mutation = Mutation(
        operation=operation,
        noun=noun,
        key=key,
        params=params,
        send=send,
        mirror_table="payment_intents",
        mirror_row=payment_intent_columns,
        identity_flags="payment intent (a capture or cancel is sent once per intent)",
    )
    out = run_mutation(store, mutation, options=options, clock=clock, sleep=sleep, notify=notify)
    return ActionResult(
        action=action,
        obj=out.obj,
        idempotency_key=key,
        replayed=out.replayed,
        attempt=out.claim.attempt,
        warnings=out.warnings,
    )


# --- payments show ------------------------------------------------------------

_CHARGE_KEYS = ("id", "status", "amount", "amount_captured", "amount_refunded", "captured",
                "refunded", "last_event_type", "last_event_created")
_REFUND_KEYS = ("id", "status", "amount", "currency", "reason", "failure_reason", "refund_ref",
                "charge", "created", "last_event_type", "last_event_created", "source")


def show_payment(store: Store, intent: str) -> dict[str, Any]:
    """The mirror's view of one payment intent (no network)."""
    pi_id = _intent(intent)
    pi = mirror.get_row(store, "payment_intents", pi_id)
    charges = store_refunds.charges_of(store, pi_id)
    refunds = store_refunds.refunds_of(store, pi_id)
    touched = []
    for row in store_refunds.ledger_rows_for(
        store, ("payment_intent.create", "refund.create", *[a[0] for a in ACTIONS.values()])
    ):
        params = json.loads(row["params"] or "{}")
        if row["object_id"] == pi_id or params.get("payment_intent") == pi_id:
            touched.append({
                "key": row["key"], "operation": row["operation"], "state": row["state"],
                "object_id": row["object_id"], "error": row["error"],
            })
    if pi is None and not refunds and not charges and not touched:
        raise UsageError(
            f"the mirror knows nothing of {pi_id}",
            hint="replay its webhooks (stripectl replay-webhook) or pull events (stripectl events pull)",
        )
    currency = str((pi or {}).get("currency") or next((r["currency"] for r in refunds if r["currency"]), ""))
    figures = money_of(pi, charges, refunds)
    return {
        "payment_intent": pi_id,
        "status": (pi or {}).get("status"),
        "amount": (pi or {}).get("amount"),
        "currency": currency,
        "amount_capturable": (pi or {}).get("amount_capturable"),
        **figures,
        "last_event_created": (pi or {}).get("last_event_created"),
        "charges": [{k: c.get(k) for k in _CHARGE_KEYS} for c in charges],
        "refunds": [{k: r.get(k) for k in _REFUND_KEYS} for r in refunds],
        "ledger": touched,
    }
