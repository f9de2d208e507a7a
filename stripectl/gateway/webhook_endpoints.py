"""The account's webhook endpoints (`GET /v1/webhook_endpoints`) and the SDK's API version."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stripectl.gateway.client import Gateway, to_dict
from stripectl.gateway.sdk import stripe

PAGE_LIMIT = 100  # Stripe's maximum page size


def sdk_api_version() -> str:
    """The API version stripe-python pins and renders objects with."""
    return str(stripe.api_version)


def iter_webhook_endpoints(gateway: Gateway, *, limit: int = PAGE_LIMIT) -> Iterator[dict[str, Any]]:
    """Every endpoint of the account, through the SDK's auto-paging, as plain dicts."""
    params = stripe.params.WebhookEndpointListParams(limit=limit)
    first = gateway.call(lambda: gateway.client.v1.webhook_endpoints.list(params))
    items = iter(first.auto_paging_iter())
    while True:
        try:
            # The next page is fetched inside next(): map its errors too.
            obj = gateway.call(lambda: next(items))
        except StopIteration:
            return
        yield to_dict(obj)
