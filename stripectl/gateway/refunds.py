"""Refunds, captures and cancels with an explicit idempotency key, and the
reads a refund is checked against first.

Like gateway/payments.py: the key always comes from the ledger, and expected
outcomes come back as `Created` / `Failure` values so the caller can settle
its ledger row before deciding what to tell the operator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import stripe

from stripectl.gateway.client import Gateway, response_headers, to_dict
from stripectl.gateway.payments import MAX_KEY_LENGTH, Created, Failure, _failure, _replayed


def _send(call: Callable[[dict[str, Any]], Any], key: str) -> Created | Failure:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError("an idempotency key of 1..255 characters is required")
    try:
        obj = call({"idempotency_key": key})
    except stripe.StripeError as exc:
        return _failure(exc)
    headers = response_headers(obj)
    return Created(
        obj=to_dict(obj), replayed=_replayed(headers), request_id=headers.get("request-id")
    )


def create_refund(gw: Gateway, params: dict[str, Any], *, idempotency_key: str) -> Created | Failure:
    """POST /v1/refunds with `Idempotency-Key: <idempotency_key>`."""
    return _send(
        lambda opts: gw.client.v1.refunds.create(params=cast(Any, params), options=cast(Any, opts)),
        idempotency_key,
    )


def capture_payment_intent(
    gw: Gateway, intent: str, params: dict[str, Any], *, idempotency_key: str
) -> Created | Failure:
    """POST /v1/payment_intents/:id/capture with an Idempotency-Key."""
    return _send(
        lambda opts: gw.client.v1.payment_intents.capture(
            intent, params=cast(Any, params), options=cast(Any, opts)
        ),
        idempotency_key,
    )


def cancel_payment_intent(
    gw: Gateway, intent: str, params: dict[str, Any], *, idempotency_key: str
) -> Created | Failure:
    """POST /v1/payment_intents/:id/cancel with an Idempotency-Key."""
    return _send(
        lambda opts: gw.client.v1.payment_intents.cancel(
            intent, params=cast(Any, params), options=cast(Any, opts)
        ),
        idempotency_key,
    )


def payment_with_charge(gw: Gateway, intent: str) -> dict[str, Any]:
    """The PaymentIntent with `latest_charge` expanded (amount_captured,
    amount_refunded live on the charge)."""
    return to_dict(
        gw.call(
            lambda: gw.client.v1.payment_intents.retrieve(
                intent, params={"expand": ["latest_charge"]}
            )
        )
    )


def refunds_of_payment(gw: Gateway, intent: str) -> list[dict[str, Any]]:
    """Every refund Stripe has for the intent (all pages), newest first."""

    def listing() -> list[dict[str, Any]]:
        page = gw.client.v1.refunds.list(params={"payment_intent": intent, "limit": 100})
        return [to_dict(r) for r in page.auto_paging_iter()]

    return gw.call(listing)
