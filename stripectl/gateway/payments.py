"""Creating payment intents and checkout sessions with an explicit idempotency key.

The key always comes from the caller (the ledger), never from the SDK's
per-call random default, so a re-run of the same command sends the same key
and Stripe replays the first answer instead of charging again. The SDK's own
network retries reuse the key we pass.

Expected outcomes come back as values (`Created` or `Failure`), so the caller
can settle its ledger row before deciding what to tell the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import stripe

from stripectl.errors import StripectlError
from stripectl.gateway.client import Gateway, map_stripe_error, response_headers, to_dict

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Created:
    obj: dict[str, Any]
    replayed: bool  # Stripe answered from its idempotency cache
    request_id: str | None


@dataclass(frozen=True)
class Failure:
    error: StripectlError
    replayed: bool
    http_status: int | None
    code: str | None
    # A declined confirm returns the PaymentIntent inside the 402 error body.
    obj: dict[str, Any] | None = None


def _replayed(headers: dict[str, str]) -> bool:
    return headers.get("idempotent-replayed", "").strip().lower() == "true"


def _failure(exc: stripe.StripeError, gw: Gateway | None = None) -> Failure:
    headers = {str(k).lower(): str(v) for k, v in dict(exc.headers or {}).items()}
    obj: dict[str, Any] | None = None
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else None
    for field in ("payment_intent", "setup_intent"):
        if err is not None and isinstance(err.get(field), dict) and err[field].get("id"):
            obj = err[field]
            break
    mapped = map_stripe_error(exc, gw.settings if gw is not None else None)
    if not isinstance(mapped, StripectlError):  # pragma: no cover - map_stripe_error contract
        raise mapped
    return Failure(
        error=mapped,
        replayed=_replayed(headers),
        http_status=exc.http_status,
        code=exc.code or (err.get("code") if err else None),
        obj=obj,
    )


def _create(gw: Gateway, create: Any, params: dict[str, Any], key: str) -> Created | Failure:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError("an idempotency key of 1..255 characters is required")
    try:
        obj = create(params=cast(Any, params), options={"idempotency_key": key})
    except stripe.StripeError as exc:
        return _failure(exc, gw)
    headers = response_headers(obj)
    return Created(
        obj=to_dict(obj), replayed=_replayed(headers), request_id=headers.get("request-id")
    )


def create_payment_intent(
    gw: Gateway, params: dict[str, Any], *, idempotency_key: str
) -> Created | Failure:
    """POST /v1/payment_intents with `Idempotency-Key: <idempotency_key>`."""
    return _create(gw, gw.client.v1.payment_intents.create, params, idempotency_key)


def create_checkout_session(
    gw: Gateway, params: dict[str, Any], *, idempotency_key: str
) -> Created | Failure:
    """POST /v1/checkout/sessions with `Idempotency-Key: <idempotency_key>`."""
    return _create(gw, gw.client.v1.checkout.sessions.create, params, idempotency_key)


def retrieve_payment_intent(gw: Gateway, intent_id: str) -> dict[str, Any]:
    return to_dict(gw.call(lambda: gw.client.v1.payment_intents.retrieve(intent_id)))


def retrieve_checkout_session(gw: Gateway, session_id: str) -> dict[str, Any]:
    return to_dict(gw.call(lambda: gw.client.v1.checkout.sessions.retrieve(session_id)))
