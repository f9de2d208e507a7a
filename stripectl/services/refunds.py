"""`refunds create`: a refund that a re-run, a retry or a second agent cannot repeat.

The idempotency key is derived from `--refund-ref` (a support ticket, a
return number): the same ref is the same refund, so a re-run replays it.
Before anything is sent, what the payment already gave back is checked
against what was captured, from two sides:

* Stripe: the payment intent's latest charge (`amount_captured`,
  `amount_refunded`) and its refunds (each with the `refund_ref` stripectl
  put in its metadata, or none when made elsewhere);
* the ledger: refunds this mirror sent whose outcome Stripe does not show
  (pending: the answer never came), re-read inside the claim's write
  transaction, so two invocations at once cannot both pass.

Refused locally, with the figures: a refund larger than what is left, and a
second refund of the same amount on the same payment under another ref
(two support agents handling one complaint) unless `allow_repeat`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stripectl import money
from stripectl.errors import UsageError
from stripectl.gateway.client import Gateway
from stripectl.gateway.payments import Created, Failure
from stripectl.gateway.refunds import create_refund, payment_with_charge, refunds_of_payment
from stripectl.services import ledger
from stripectl.services.payments import Mutation, check_metadata, run_mutation
from stripectl.store import Store, mirror
from stripectl.store import refunds as store_refunds
from stripectl.webhooks.refunds import ACTIVE, charge_row, refund_row

OPERATION = "refund.create"
REASONS = ("duplicate", "fraudulent", "requested_by_customer")
REFUND_NOTE = (
    "status is provisional: the refund's final state (succeeded, failed) comes from the "
    "refund.updated / refund.failed webhooks"
)


@dataclass(frozen=True)
class RefundRequest:
    payment_intent: str
    refund_ref: str
    amount: int | None = None  # None: whatever is left to refund
    reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    allow_repeat: bool = False


def prepare_refund(req: RefundRequest) -> tuple[str, dict[str, Any]]:
    """Validate and build (idempotency key, params): no store, no network."""
    pi = req.payment_intent.strip()
    if not pi.startswith("pi_"):
        raise UsageError(f"--payment-intent {req.payment_intent!r} is not a payment intent id (pi_...)")
    ref = req.refund_ref.strip()
    if not ref:
        raise UsageError(
            "--refund-ref is required: a refund needs a stable identity (a ticket, a return "
            "number) so that a re-run cannot refund twice"
        )
    if req.reason is not None and req.reason not in REASONS:
        raise UsageError(f"--reason must be one of {', '.join(REASONS)}, got {req.reason!r}")
    metadata = dict(req.metadata)
    if metadata.get("refund_ref", ref) != ref:
        raise UsageError("--metadata refund_ref=... conflicts with --refund-ref")
    metadata["refund_ref"] = ref
    check_metadata(metadata)
    params: dict[str, Any] = {"payment_intent": pi}
    if req.amount is not None:
        params["amount"] = money.parse_amount(req.amount)
    if req.reason:
        params["reason"] = req.reason
    params["metadata"] = metadata
    return ledger.derive_key("re", ref), params


# --- what is already refunded -------------------------------------------------


@dataclass(frozen=True)
class Prior:
    """A refund of the same payment that is not this one."""

    ref: str | None
    amount: int | None  # None: a full refund whose amount the ledger cannot tell
    status: str
    where: str  # stripe | ledger
    id: str | None = None


@dataclass
class Standing:
    payment_intent: str
    currency: str
    status: str | None
    captured: int
    refunded: int  # by Stripe, this ref's own refund left out
    unresolved: int = 0  # ledger refunds of other refs that Stripe does not show
    priors: list[Prior] = field(default_factory=list)

    @property
    def refundable(self) -> int:
        return max(0, self.captured - self.refunded - self.unresolved)

    def figures(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "captured": self.captured,
            "refunded": self.refunded,
            "unresolved": self.unresolved,
            "refundable": self.refundable,
        }


def _ref_of(refund: dict[str, Any]) -> str | None:
    md = refund.get("metadata")
    ref = md.get("refund_ref") if isinstance(md, dict) else None
    return ref if isinstance(ref, str) else None


def remote_standing(gw: Gateway, pi_id: str, ref: str) -> tuple[Standing, list[dict[str, Any]]]:
    """What Stripe says is captured and refunded, this ref's own refund left out."""
    pi = payment_with_charge(gw, pi_id)
    refunds = refunds_of_payment(gw, pi_id)
    charge = pi.get("latest_charge")
    if isinstance(charge, dict):
        row = charge_row(charge)  # amount_captured, or amount when captured (older shapes)
        captured, refunded = int(row["amount_captured"] or 0), int(row["amount_refunded"] or 0)
    else:  # no charge yet (or not expanded): nothing was captured
        captured, refunded = int(pi.get("amount_received") or 0), 0
    mine = sum(int(r.get("amount") or 0) for r in refunds if _ref_of(r) == ref and r.get("status") in ACTIVE)
    standing = Standing(
        payment_intent=pi_id,
        currency=str(pi.get("currency") or ""),
        status=pi.get("status"),
        captured=captured,
        refunded=max(0, refunded - mine),
    )
    for r in refunds:
        if _ref_of(r) != ref and r.get("status") in ACTIVE:
            standing.priors.append(
                Prior(_ref_of(r), r.get("amount"), str(r.get("status")), "stripe", r.get("id"))
            )
    return standing, refunds


def _with_ledger(
    base: Standing, remote: list[dict[str, Any]], rows: list[dict[str, Any]], key: str
) -> Standing:
    """Add the ledger's refunds of this payment that Stripe does not show."""
    seen_ids = {r.get("id") for r in remote}
    seen_refs = {_ref_of(r) for r in remote} - {None}
    out = dataclasses.replace(base, priors=list(base.priors))
    for row in rows:
        if row["key"] == key or row["state"] == "failed":
            continue
        params = json.loads(row["params"] or "{}")
        if params.get("payment_intent") != base.payment_intent:
            continue
        ref = (params.get("metadata") or {}).get("refund_ref")
        if row["object_id"] in seen_ids or ref in seen_refs:
            continue  # Stripe's figures already count it
        amount = params.get("amount")
        out.unresolved += int(amount) if amount is not None else out.refundable
        out.priors.append(Prior(ref, amount, f"ledger {row['state']}", "ledger", row["object_id"]))
    return out


def _show(amount: int, currency: str) -> str:
    return money.format_amount(amount, currency) if currency else str(amount)


def check(standing: Standing, requested: int | None, ref: str, *, allow_repeat: bool) -> int:
    """Refuse (UsageError, exit 2) what Stripe would refuse or what looks like a
    double refund; return the amount this refund will be."""
    cur = standing.currency
    if standing.captured <= 0:
        raise UsageError(
            f"payment {standing.payment_intent} has nothing captured to refund "
            f"(status {standing.status})",
            hint="an uncaptured payment is released with `stripectl payments cancel`",
        )
    figures = (
        f"captured {_show(standing.captured, cur)}, already refunded "
        f"{_show(standing.refunded, cur)}"
        + (f", unresolved in the ledger {_show(standing.unresolved, cur)}" if standing.unresolved else "")
        + f": {_show(standing.refundable, cur)} left"
    )
    amount = standing.refundable if requested is None else requested
    if standing.refundable <= 0 or amount > standing.refundable:
        what = "a refund of the rest" if requested is None else f"a refund of {_show(amount, cur)}"
        raise UsageError(
            f"refused before any request: {what} would exceed what was captured on "
            f"{standing.payment_intent} ({figures})",
            hint="check the payment's refunds (stripectl payments show "
            f"{standing.payment_intent}); an unresolved ledger refund is settled by re-running "
            "its own command",
        )
    same = [p for p in standing.priors if p.amount == amount or p.amount is None]
    if same and not allow_repeat:
        p = same[0]
        who = f"ref {p.ref}" if p.ref else "no refund ref (made outside stripectl)"
        raise UsageError(
            f"refused before any request: {standing.payment_intent} already has a refund of "
            f"{_show(amount, cur)} under {who} ({p.status}"
            + (f", {p.id}" if p.id else "")
            + f"); this would be a second refund of the same amount under ref {ref} ({figures})",
            hint="if both refunds are really meant, re-run with --allow-repeat; if it is the same "
            "refund, re-run with its original --refund-ref to replay it",
        )
    return amount


# --- the ledgered create ------------------------------------------------------


@dataclass
class RefundResult:
    obj: dict[str, Any] = field(repr=False)
    idempotency_key: str
    replayed: bool
    attempt: int
    refund_ref: str
    standing: Standing
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        o = self.obj
        amount, currency = o.get("amount"), str(o.get("currency") or self.standing.currency)
        return {
            "object": "refund",
            "id": o.get("id"),
            "status": o.get("status"),
            "provisional": True,
            "payment_intent": self.standing.payment_intent,
            "charge": refund_row(o)["charge"] if o.get("id") else None,
            "amount": amount,
            "currency": currency,
            "amount_display": money.format_amount(int(amount or 0), currency),
            "reason": o.get("reason"),
            "refund_ref": self.refund_ref,
            "checked": self.standing.figures(),
            "livemode": bool(o.get("livemode")),
            "idempotency_key": self.idempotency_key,
            "replayed": self.replayed,
            "attempt": self.attempt,
            "note": REFUND_NOTE,
            "warnings": self.warnings,
        }


def _refund_object(row: dict[str, Any]) -> dict[str, Any]:
    """A Refund as the API answered it, rebuilt from its mirror row."""
    return {
        "id": row["id"], "object": "refund", "amount": row["amount"], "currency": row["currency"],
        "status": row["status"], "charge": row["charge"], "payment_intent": row["payment_intent"],
        "reason": row["reason"], "failure_reason": row["failure_reason"],
        "metadata": json.loads(row["metadata"] or "{}"), "created": row["created"],
    }


def create_refund_checked(
    store: Store,
    gw: Gateway,
    req: RefundRequest,
    *,
    options: ledger.LedgerOptions,
    clock: ledger.Clock | None = None,
    sleep: Callable[[float], None] | None = None,
    notify: ledger.Notify | None = None,
) -> RefundResult:
    key, params = prepare_refund(req)
    ref = params["metadata"]["refund_ref"]
    base, remote = remote_standing(gw, params["payment_intent"], ref)
    checked: list[Standing] = []
    own: list[dict[str, Any]] = []  # this key's ledger row as the claim found it
    waited: list[bool] = []

    def guard() -> None:
        # Inside the claim's transaction: another stripectl's pending refund of
        # this payment, claimed a moment ago, is visible here.
        rows = store_refunds.ledger_rows_for(store, (OPERATION,))
        standing = _with_ledger(base, remote, rows, key)
        check(standing, params.get("amount"), ref, allow_repeat=req.allow_repeat)
        checked[:] = [standing]
        own[:] = [r for r in rows if r["key"] == key]

    def waiting(message: str) -> None:
        waited.append(True)
        if notify is not None:
            notify(message)

    def send(p: dict[str, Any], k: str) -> Created | Failure:
        # We waited for another stripectl sending this very refund, and it got
        # Stripe's answer: that answer is in the ledger and the mirror, so no
        # second request is needed (two terminals, one refund, one request).
        if waited and own and own[0]["state"] == "succeeded" and own[0]["object_id"]:
            row = mirror.get_row(store, "refunds", own[0]["object_id"])
            if row is not None:
                return Created(obj=_refund_object(row), replayed=True, request_id=None)
        return create_refund(gw, p, idempotency_key=k)

    mutation = Mutation(
        operation=OPERATION,
        noun="refund",
        key=key,
        params=params,
        send=send,
        mirror_table="refunds",
        # A Refund carries no livemode: the key's mode is the refund's.
        mirror_row=lambda obj: {**refund_row(obj), "livemode": int(gw.livemode)},
        identity_flags="--refund-ref",
        guard=guard,
    )
    out = run_mutation(store, mutation, options=options, clock=clock, sleep=sleep, notify=waiting)
    return RefundResult(
        obj=out.obj,
        idempotency_key=key,
        replayed=out.replayed,
        attempt=out.claim.attempt,
        refund_ref=ref,
        standing=checked[0] if checked else base,
        warnings=out.warnings,
    )
