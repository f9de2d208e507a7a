"""`checkout create`: a Checkout Session that later links its subscription to a user.

The user id travels three ways so that whichever event arrives first can be
tied back to the user: `client_reference_id`, the Session's metadata (kept
only on the Session), and a copy of the metadata in
`subscription_data.metadata` (subscription mode) or
`payment_intent_data.metadata` (payment mode), which Stripe puts on the
objects it creates. The Session is also recorded in the mirror so that a
replayed `checkout.session.completed` finds user_id / plan_name by id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stripectl.errors import UsageError
from stripectl.gateway.client import Gateway
from stripectl.gateway.payments import create_checkout_session
from stripectl.services import ledger
from stripectl.services.payments import Mutation, check_metadata, run_mutation
from stripectl.store import Store
from stripectl.webhooks import snapshots

MODES = ("subscription", "payment")
SESSION_ID_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"
MAX_CLIENT_REFERENCE = 200


@dataclass(frozen=True)
class CheckoutRequest:
    mode: str
    prices: tuple[str, ...]
    user_id: str
    success_url: str
    quantities: tuple[int, ...] = ()
    customer: str | None = None
    customer_email: str | None = None
    plan_name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    cancel_url: str | None = None
    idempotency_key: str | None = None


@dataclass
class CheckoutResult:
    obj: dict[str, Any] = field(repr=False)
    idempotency_key: str
    replayed: bool
    attempt: int
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        o = self.obj
        md = o.get("metadata") or {}
        return {
            "object": "checkout.session",
            "id": o.get("id"),
            "url": o.get("url"),
            "mode": o.get("mode"),
            "status": o.get("status"),
            "payment_status": o.get("payment_status"),
            "customer": o.get("customer") if isinstance(o.get("customer"), str) else None,
            "customer_email": o.get("customer_email"),
            "user_id": md.get("user_id") or o.get("client_reference_id"),
            "plan_name": md.get("plan_name"),
            "expires_at": o.get("expires_at"),
            "livemode": bool(o.get("livemode")),
            "idempotency_key": self.idempotency_key,
            "replayed": self.replayed,
            "attempt": self.attempt,
            "warnings": self.warnings,
        }


def _check_url(flag: str, url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{flag} must be an absolute http(s) URL, got {url!r}")
    return url.strip()


def with_session_id(url: str) -> str:
    """Append `session_id={CHECKOUT_SESSION_ID}` unless the URL already carries the placeholder."""
    url = _check_url("--success-url", url)
    if SESSION_ID_PLACEHOLDER in url:
        return url
    parts = urlsplit(url)
    extra = f"session_id={SESSION_ID_PLACEHOLDER}"
    query = f"{parts.query}&{extra}" if parts.query else extra
    # urlunsplit keeps the braces as they are: Stripe looks for them literally.
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _line_items(prices: tuple[str, ...], quantities: tuple[int, ...]) -> list[dict[str, Any]]:
    if not prices:
        raise UsageError("at least one --price is required")
    if len(quantities) > len(prices):
        raise UsageError(
            f"{len(quantities)} --quantity values for {len(prices)} --price values: "
            "each --quantity pairs with the --price at the same position"
        )
    if len(set(prices)) != len(prices):
        raise UsageError("the same --price is given twice: use --quantity instead")
    items = []
    for i, price in enumerate(prices):
        qty = quantities[i] if i < len(quantities) else 1
        if not price.strip():
            raise UsageError("--price may not be empty")
        if qty < 1:
            raise UsageError(f"--quantity must be at least 1, got {qty} for {price}")
        items.append({"price": price.strip(), "quantity": qty})
    return items


def prepare_checkout(req: CheckoutRequest) -> tuple[str, dict[str, Any]]:
    """Validate and build (idempotency key, params): no store, no network."""
    if req.mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {req.mode!r}")
    user_id = req.user_id.strip()
    if not user_id:
        raise UsageError("--user-id is required")
    if len(user_id) > MAX_CLIENT_REFERENCE:
        raise UsageError(f"--user-id is longer than {MAX_CLIENT_REFERENCE} characters")
    if req.customer and req.customer_email:
        raise UsageError("give --customer or --customer-email, not both")
    if req.customer and not req.customer.startswith("cus_"):
        raise UsageError(f"--customer {req.customer!r} is not a customer id (cus_...)")
    if req.customer_email is not None and "@" not in req.customer_email:
        raise UsageError(f"--customer-email {req.customer_email!r} is not an email address")
    items = _line_items(req.prices, req.quantities)

    metadata = dict(req.metadata)
    for name, value in (("user_id", user_id), ("plan_name", req.plan_name)):
        if value is None:
            continue
        if metadata.get(name, value) != value:
            raise UsageError(f"--metadata {name}=... conflicts with --{name.replace('_', '-')}")
        metadata[name] = value
    check_metadata(metadata)

    params: dict[str, Any] = {
        "mode": req.mode,
        "line_items": items,
        "success_url": with_session_id(req.success_url),
        "client_reference_id": user_id,
        "metadata": metadata,
    }
    if req.cancel_url:
        params["cancel_url"] = _check_url("--cancel-url", req.cancel_url)
    if req.customer:
        params["customer"] = req.customer
    elif req.customer_email:
        params["customer_email"] = req.customer_email
    # Session metadata stays on the Session: copy it where later events look.
    if req.mode == "subscription":
        params["subscription_data"] = {"metadata": dict(metadata)}
    else:
        params["payment_intent_data"] = {"metadata": dict(metadata)}

    if req.idempotency_key:
        key = ledger.check_key(req.idempotency_key)
    else:
        identity = json.dumps([user_id, req.mode, sorted(i["price"] for i in items)])
        key = ledger.derive_key("cs", identity)
    return key, params


def create_checkout(
    store: Store,
    gw: Gateway,
    req: CheckoutRequest,
    *,
    options: ledger.LedgerOptions,
    clock: ledger.Clock | None = None,
    sleep: Callable[[float], None] | None = None,
    notify: ledger.Notify | None = None,
) -> CheckoutResult:
    key, params = prepare_checkout(req)
    mutation = Mutation(
        operation="checkout_session.create",
        noun="checkout session",
        key=key,
        params=params,
        send=lambda p, k: create_checkout_session(gw, p, idempotency_key=k),
        mirror_table="checkout_sessions",
        mirror_row=snapshots.checkout_session_row,
        identity_flags="--idempotency-key (or another --user-id/--price)",
    )
    out = run_mutation(store, mutation, options=options, clock=clock, sleep=sleep, notify=notify)
    return CheckoutResult(
        obj=out.obj,
        idempotency_key=key,
        replayed=out.replayed,
        attempt=out.claim.attempt,
        warnings=out.warnings,
    )
