"""Money mutations through the ledger, and `payments create`.

`run_mutation()` is the one path for every POST that moves money or opens a
checkout: claim the key in the ledger (committed), send it with that key,
settle the ledger row and record the object in the mirror in one
transaction, and explain failures in terms of what a re-run will do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stripectl import money
from stripectl.errors import (
    CardDeclined,
    IdempotencyConflict,
    NetworkError,
    StoreError,
    StripectlError,
    UsageError,
)
from stripectl.gateway.client import Gateway
from stripectl.gateway.payments import Created, Failure, create_payment_intent
from stripectl.services import ledger
from stripectl.store import Store, mirror
from stripectl.webhooks import snapshots

ACCESS_NOTE = (
    "status is provisional: grant access on the payment_intent.succeeded webhook, never on this response"
)
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY = 40
METADATA_MAX_VALUE = 500


# --- metadata -----------------------------------------------------------------


def parse_metadata(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        k, sep, v = pair.partition("=")
        if not sep or not k.strip():
            raise UsageError(f"--metadata {pair!r} is not key=value")
        out[k.strip()] = v
    return out


def check_metadata(md: dict[str, str]) -> None:
    """Stripe's limits, checked before anything is written or sent."""
    if len(md) > METADATA_MAX_KEYS:
        raise UsageError(f"metadata has {len(md)} keys; Stripe allows at most {METADATA_MAX_KEYS}")
    for k, v in md.items():
        if len(k) > METADATA_MAX_KEY:
            raise UsageError(
                f"metadata key {k[:45]!r} is {len(k)} characters; Stripe allows {METADATA_MAX_KEY}"
            )
        if "[" in k or "]" in k:
            raise UsageError(f"metadata key {k!r} may not contain square brackets")
        if len(v) > METADATA_MAX_VALUE:
            raise UsageError(
                f"metadata value for {k!r} is {len(v)} characters; Stripe allows {METADATA_MAX_VALUE}"
            )


# --- the ledgered create ------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    operation: str  # payment_intent.create | checkout_session.create
    noun: str  # for messages
    key: str
    params: dict[str, Any]
    send: Callable[[dict[str, Any], str], Created | Failure]
    mirror_table: str
    mirror_row: Callable[[dict[str, Any]], dict[str, Any]]
    identity_flags: str  # what to change for a new request, e.g. "--order-ref"


@dataclass
class Outcome:
    obj: dict[str, Any]
    replayed: bool
    claim: ledger.Claim
    warnings: list[str] = field(default_factory=list)


def record_api_snapshot(store: Store, table: str, row: dict[str, Any]) -> None:
    """Newest wins: never replace a row holding a later snapshot. Inside a transaction."""
    existing = mirror.get_row(store, table, row["id"])
    if existing is not None and existing.get("last_event_created") is not None:
        theirs, ours = int(existing["last_event_created"]), int(row["last_event_created"] or 0)
        # On a tie the webhook's snapshot wins: it may hold a later state of the same second.
        if theirs > ours or (theirs == ours and existing.get("source") != "api"):
            return
    mirror.put_rows(store, table, [row])
    if store.meta_get("livemode") is None:
        store.meta_set("livemode", "1" if row.get("livemode") else "0")


def _snapshot(m: Mutation, obj: dict[str, Any], now: int) -> dict[str, Any]:
    return {
        **m.mirror_row(obj),
        "idempotency_key": m.key,
        "source": "api",
        # The answer (even a replayed one) is the object as it was created.
        "last_event_created": obj.get("created") or now,
        "last_event_id": f"api:{m.key}",
        "updated_at": now,
    }


def _explain(m: Mutation, failure: Failure) -> StripectlError:
    err = failure.error
    key = m.key
    if isinstance(err, IdempotencyConflict):
        return ledger.conflict_error(key, None, identity_flags=m.identity_flags, remote=True)
    if isinstance(err, CardDeclined):
        err.message = ("replayed: " if failure.replayed else "") + f"{err.message} [key {key}]"
        err.hint = (
            f"Stripe keeps this answer for key {key} for 24 h: re-running the same command "
            f"replays the same decline. To try another card, use a new {m.identity_flags}."
        )
    elif isinstance(err, NetworkError):
        err.message = f"{err.message} [key {key}: outcome unknown]"
        err.hint = (
            "re-run the same command: it sends the same key, so Stripe replays the result "
            "if the request got through, and nothing is created twice"
        )
    elif failure.http_status is not None and failure.http_status >= 500:
        err.message = f"{err.message} [key {key}]"
        err.hint = (
            f"Stripe keeps this {failure.http_status} answer for key {key} for 24 h, so a "
            f"re-run replays it; check whether the {m.noun} exists before retrying with a "
            f"new {m.identity_flags}"
        )
    else:
        err.message = f"{err.message} [key {key}]"
    err.args = (err.message,)
    return err


def _unrecorded(
    m: Mutation, obj: dict[str, Any] | None, exc: StoreError, *, answer: str | None = None
) -> StoreError:
    """Stripe acted, the ledger could not record it (disk full, I/O error).

    The one thing the user must not do now is retry under a new identity:
    that charges twice. Say what exists at Stripe and that the same command
    replays it (the ledger row is still `pending` with the same key).
    """
    oid = (obj or {}).get("id")
    if answer is None:
        what = f"Stripe created {m.noun} {oid} (status {(obj or {}).get('status')})"
    else:
        what = f"Stripe answered: {answer}" + (f" ({m.noun} {oid})" if oid else "")
    err = StoreError(
        f"{what} [key {m.key}], but the ledger could not record it: {exc.message}",
        hint=(
            "free the disk, then re-run the same command: it sends the same idempotency key, "
            f"so Stripe replays {oid or 'the answer'} instead of charging again. Do not retry "
            f"with a new {m.identity_flags}: that would charge twice"
        ),
    )
    return err


def run_mutation(
    store: Store,
    m: Mutation,
    *,
    options: ledger.LedgerOptions,
    clock: ledger.Clock | None = None,
    sleep: Callable[[float], None] | None = None,
    notify: ledger.Notify | None = None,
) -> Outcome:
    claim = ledger.claim(
        store,
        key=m.key,
        operation=m.operation,
        params=m.params,
        options=options,
        identity_flags=m.identity_flags,
        clock=clock,
        sleep=sleep,
        notify=notify,
    )
    settled = False
    try:
        result = m.send(m.params, m.key)
        now = int((clock or time.time)())
        if isinstance(result, Failure):
            declined = result.obj

            def record_declined() -> None:
                if declined is not None:
                    record_api_snapshot(store, m.mirror_table, _snapshot(m, declined, now))

            try:
                ledger.settle_error(
                    store,
                    claim,
                    error=result.error,
                    http_status=result.http_status,
                    code=result.code,
                    replayed=result.replayed,
                    obj=declined,
                    clock=clock,
                    also=record_declined,
                )
            except StoreError as exc:
                raise _unrecorded(m, declined, exc, answer=result.error.message) from exc
            settled = True
            raise _explain(m, result)
        obj = result.obj
        try:
            ledger.settle_success(
                store,
                claim,
                obj=obj,
                replayed=result.replayed,
                clock=clock,
                also=lambda: record_api_snapshot(store, m.mirror_table, _snapshot(m, obj, now)),
            )
        except StoreError as exc:
            raise _unrecorded(m, obj, exc) from exc
        settled = True
    finally:
        if not settled:
            # Best effort: a dead lease also expires by itself; never mask the real error.
            with contextlib.suppress(StripectlError):
                ledger.release(store, claim, note="interrupted before Stripe's answer was recorded")
    warnings = []
    previous_id = claim.previous.get("object_id") if claim.previous else None
    if previous_id and obj.get("id") and previous_id != obj["id"]:
        warnings.append(
            f"Stripe answered with a NEW {m.noun} {obj['id']}; this key earlier gave "
            f"{previous_id} (the key had been pruned): check for a duplicate"
        )
    return Outcome(obj=obj, replayed=result.replayed, claim=claim, warnings=warnings)


# --- payments create ----------------------------------------------------------


def _ref(value: Any) -> str | None:
    """An expandable field: an id, or an object carrying one."""
    if isinstance(value, dict):
        return str(value["id"]) if value.get("id") else None
    return str(value) if value else None


@dataclass(frozen=True)
class PaymentRequest:
    amount: int
    currency: str
    order_ref: str | None = None
    idempotency_key: str | None = None
    customer: str | None = None
    payment_method: str | None = None
    payment_method_types: tuple[str, ...] = ()
    confirm: bool = False
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class PaymentResult:
    obj: dict[str, Any] = field(repr=False)
    idempotency_key: str
    replayed: bool
    attempt: int
    order_ref: str | None
    warnings: list[str]

    @property
    def amount_display(self) -> str:
        return money.format_amount(int(self.obj["amount"]), str(self.obj["currency"]))

    def to_json(self, *, show_client_secret: bool = False) -> dict[str, Any]:
        o = self.obj
        err = o.get("last_payment_error") or {}
        out: dict[str, Any] = {
            "object": "payment_intent",
            "id": o.get("id"),
            "status": o.get("status"),
            "provisional": True,
            "amount": o.get("amount"),
            "currency": o.get("currency"),
            "amount_display": self.amount_display,
            "customer": _ref(o.get("customer")),
            "payment_method": _ref(o.get("payment_method")),
            "next_action": (o.get("next_action") or {}).get("type"),
            "last_payment_error": err.get("decline_code") or err.get("code"),
            "livemode": bool(o.get("livemode")),
            "order_ref": self.order_ref,
            "idempotency_key": self.idempotency_key,
            "replayed": self.replayed,
            "attempt": self.attempt,
            "access_note": ACCESS_NOTE,
            "warnings": self.warnings,
        }
        if show_client_secret:
            out["client_secret"] = o.get("client_secret")
        return out


def prepare_payment(req: PaymentRequest) -> tuple[str, dict[str, Any]]:
    """Validate and build (idempotency key, params): no store, no network."""
    amount = money.parse_amount(req.amount)
    currency = money.normalize_currency(req.currency)
    order_ref = (req.order_ref or "").strip() or None
    if req.idempotency_key and order_ref:
        # Each names the payment's identity: with both, one order could be
        # charged under two keys (a re-run with only --order-ref derives another).
        raise UsageError(
            "--order-ref and --idempotency-key are mutually exclusive: give exactly one, "
            "so that one order always maps to one idempotency key"
        )
    if req.idempotency_key:
        key = ledger.check_key(req.idempotency_key)
    elif order_ref:
        key = ledger.derive_key("pi", order_ref)
    else:
        raise UsageError(
            "--order-ref or --idempotency-key is required: a payment needs a stable identity "
            "so that a re-run cannot charge twice"
        )
    if req.customer and not req.customer.startswith("cus_"):
        raise UsageError(f"--customer {req.customer!r} is not a customer id (cus_...)")
    if req.payment_method and not req.payment_method.startswith(("pm_", "card_", "src_")):
        raise UsageError(f"--payment-method {req.payment_method!r} is not a pm_/card_/src_ id")
    if req.confirm and not req.payment_method:
        raise UsageError("--confirm needs --payment-method (e.g. pm_card_visa)")
    metadata = dict(req.metadata)
    if order_ref:
        if metadata.get("order_ref", order_ref) != order_ref:
            raise UsageError("--metadata order_ref=... conflicts with --order-ref")
        metadata["order_ref"] = order_ref
    check_metadata(metadata)
    params: dict[str, Any] = {"amount": amount, "currency": currency}
    if req.customer:
        params["customer"] = req.customer
    if req.payment_method:
        params["payment_method"] = req.payment_method
    types = list(req.payment_method_types) or (["card"] if req.confirm else [])
    if types:
        # Server-side confirm has no return_url: card-only avoids redirect methods.
        params["payment_method_types"] = types
    if req.confirm:
        params["confirm"] = True
    if req.description:
        params["description"] = req.description
    if metadata:
        params["metadata"] = metadata
    return key, params


def create_payment(
    store: Store,
    gw: Gateway,
    req: PaymentRequest,
    *,
    options: ledger.LedgerOptions,
    clock: ledger.Clock | None = None,
    sleep: Callable[[float], None] | None = None,
    notify: ledger.Notify | None = None,
) -> PaymentResult:
    key, params = prepare_payment(req)
    mutation = Mutation(
        operation="payment_intent.create",
        noun="payment intent",
        key=key,
        params=params,
        send=lambda p, k: create_payment_intent(gw, p, idempotency_key=k),
        mirror_table="payment_intents",
        mirror_row=snapshots.payment_intent_row,
        identity_flags="--order-ref or --idempotency-key",
    )
    out = run_mutation(store, mutation, options=options, clock=clock, sleep=sleep, notify=notify)
    return PaymentResult(
        obj=out.obj,
        idempotency_key=key,
        replayed=out.replayed,
        attempt=out.claim.attempt,
        order_ref=(req.order_ref or "").strip() or None,
        warnings=out.warnings,
    )
