"""Reading the Events API (`GET /v1/events`), one page at a time.

Stripe lists events newest first and keeps them for 30 days.
`list_events_page` turns one request into plain dicts; `list_event_pages`
reads a whole range in concurrent `created` windows for
services/events_pull.py, which puts the events back in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stripectl.errors import UsageError
from stripectl.gateway.client import Gateway, to_dict
from stripectl.gateway.list_page import list_page
from stripectl.gateway.sdk import stripe
from stripectl.gateway.windows import ListingStats, Page, list_windows, object_page

PAGE_LIMIT = 100  # Stripe's maximum page size
MAX_TYPES = 20  # `types[]` takes at most 20 names (EventListParams.types)
RETENTION_SECONDS = 30 * 86400


@dataclass
class EventPage:
    events: list[dict[str, Any]]  # newest first, as Stripe returns them
    has_more: bool


def list_events_page(
    gateway: Gateway,
    *,
    created_gte: int | None,
    types: list[str] | None = None,
    delivery_failed: bool = False,
    starting_after: str | None = None,
    limit: int = PAGE_LIMIT,
) -> EventPage:
    """One page of `GET /v1/events`, newest first."""
    if types and len(types) > MAX_TYPES:
        raise UsageError(f"at most {MAX_TYPES} --type values (Stripe's limit), got {len(types)}")
    params = stripe.params.EventListParams(limit=limit)
    if created_gte is not None:
        params["created"] = stripe.params.EventListParamsCreated(gte=created_gte)
    if types:
        params["types"] = list(types)
    if delivery_failed:
        params["delivery_success"] = False
    if starting_after:
        params["starting_after"] = starting_after
    page = gateway.call(lambda: gateway.client.v1.events.list(params))
    return EventPage(events=_raw_events(page), has_more=bool(page.has_more))


def _raw_events(page: Any) -> list[dict[str, Any]]:
    """The events exactly as Stripe sent them.

    The response JSON is preferred over `to_dict()`: stripe-python 16 turns
    `*_decimal` strings into `Decimal` (not JSON-serialisable, and no longer
    the bytes Stripe rendered), while the stored inbox body should be Stripe's.
    """
    resp = getattr(page, "last_response", None)
    data = getattr(resp, "data", None)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return [json.loads(json.dumps(e)) for e in data["data"] if isinstance(e, dict)]
    return [to_dict(e.to_dict(for_json=True)) for e in page.data]


def list_event_pages(
    gateway: Gateway,
    *,
    since: int,
    upper: int,
    types: list[str] | None = None,
    delivery_failed: bool = False,
    stats: ListingStats | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Every event created at or after `since`, page by page, in concurrent
    `created` windows (gateway/windows.py): windows cover [since, upper), a
    trailing window everything newer. Pages come in no global order; within
    one second, events come in Stripe's order. Raw JSON, as Stripe sent it."""
    if types and len(types) > MAX_TYPES:
        raise UsageError(f"at most {MAX_TYPES} --type values (Stripe's limit), got {len(types)}")

    def fetch(gte: int | None, lt: int | None, after: str | None) -> Page:
        created: dict[str, int] = {} if gte is None else {"gte": gte}
        if lt is not None:
            created["lt"] = lt
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if types:
            params["types"] = list(types)
        if delivery_failed:
            params["delivery_success"] = False
        if created:
            params["created"] = created
        if after:
            params["starting_after"] = after
        data, has_more = list_page(gateway, "/v1/events", params)
        return object_page([e for e in data if isinstance(e, dict)], has_more)

    return list_windows(fetch, lo=since, upper=upper, stats=stats, concurrency=gateway.concurrency)
