"""Listing and retrieving subscriptions (and the one invoice access needs).

Two ways to walk `GET /v1/subscriptions`:

- `iter_subscriptions`: the SDK's own auto-paging (`list(...).auto_paging_iter()`),
  converted to plain dicts. Used by `access` (a customer's few subscriptions).
- `iter_subscription_pages`: the same requests through `StripeClient.raw_request`,
  one page (a list of plain dicts) at a time, without building StripeObjects.
  Building StripeObjects costs ~1.6 ms per subscription, several times the
  HTTP, the comparison and the SQLite writes together (bench/reconcile.py
  prints the bare auto-paging loop beside them).
- `list_subscription_pages`: the same raw requests in concurrent `created`
  windows (gateway/windows.py), paced by the gateway's limiter. Used by
  `sync` and `reconcile`.

Both ask for `status=all`: the default listing hides canceled subscriptions,
which is exactly the drift that matters most. Note (Stripe docs,
SubscriptionListParams.test_clock): without `customer`, subscriptions attached
to a test clock are not listed.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any

from stripectl.errors import StripeAPIError
from stripectl.gateway.client import Gateway, to_dict
from stripectl.gateway.list_page import digested_page, list_page
from stripectl.gateway.page_pool import PageDigester, Transform
from stripectl.gateway.sdk import stripe
from stripectl.gateway.windows import ListingStats, Page, list_windows

PAGE_LIMIT = 100  # Stripe's maximum page size


def _list_params(status: str, customer: str | None, limit: int) -> stripe.params.SubscriptionListParams:
    params = stripe.params.SubscriptionListParams(status=status, limit=limit)
    if customer:
        params["customer"] = customer
    return params


def iter_subscriptions(
    gateway: Gateway,
    *,
    status: str = "all",
    customer: str | None = None,
    limit: int = PAGE_LIMIT,
) -> Iterator[dict[str, Any]]:
    """Every subscription, through the SDK's auto-paging, as plain dicts."""
    params = _list_params(status, customer, limit)
    first = gateway.call(lambda: gateway.client.v1.subscriptions.list(params))
    items = iter(first.auto_paging_iter())
    while True:
        try:
            # The next page is fetched inside next(): map its errors too.
            obj = gateway.call(lambda: next(items))
        except StopIteration:
            return
        yield to_dict(obj)


def iter_subscription_pages(
    gateway: Gateway,
    *,
    status: str = "all",
    customer: str | None = None,
    limit: int = PAGE_LIMIT,
) -> Iterator[list[dict[str, Any]]]:
    """Every subscription, one page of plain dicts at a time (1 request each).

    Pages like the SDK does (`starting_after` = last id of the previous page,
    stop when `has_more` is false), so N subscriptions cost ceil(N/limit)
    requests (one when there are none).
    """
    starting_after: str | None = None
    while True:
        params: dict[str, Any] = dict(_list_params(status, customer, limit))
        if starting_after:
            params["starting_after"] = starting_after
        data, has_more = list_page(gateway, "/v1/subscriptions", params)
        yield data
        if not has_more or not data:
            return
        starting_after = str(data[-1]["id"])


def list_subscription_pages(
    gateway: Gateway,
    *,
    upper: int,
    transform: Transform,
    status: str = "all",
    stats: ListingStats | None = None,
    concurrency: int | None = None,
    helpers: int | None = None,
) -> Generator[list[Any], None, None]:
    """transform(subscription) for every subscription (created at any time),
    page by page, in no order.

    `upper` is the second the listing started: windows cover [0, upper), a
    trailing window everything created since. Same set as
    `iter_subscription_pages`; requests ~ceil(N/100) plus one per window.
    `transform` (a module-level function: it may run in a helper process,
    gateway/page_pool.py) is what the caller keeps of each subscription;
    `helpers` None: as many helper processes as the machine has CPUs to spare.
    """
    digester = PageDigester(transform, helpers=helpers)

    def fetch(gte: int | None, lt: int | None, after: str | None) -> Page:
        created: dict[str, int] = {} if gte is None else {"gte": gte}
        if lt is not None:
            created["lt"] = lt
        params: dict[str, Any] = {"status": status, "limit": PAGE_LIMIT}
        if created:
            params["created"] = created
        if after:
            params["starting_after"] = after
        return digested_page(gateway, "/v1/subscriptions", params, digester)

    try:
        yield from list_windows(
            fetch, lo=0, upper=upper, stats=stats,
            concurrency=concurrency if concurrency is not None else gateway.concurrency,
        )
    finally:
        digester.close()
        if stats is not None:
            stats.helper_pages = digester.in_helper
            stats.helper_failed = digester.helper_failed


def _concurrently(gateway: Gateway, fn: Callable[[str], Any], keys: list[str]) -> dict[str, Any]:
    """fn(key) for every key on up to `gateway.concurrency` threads (paced
    by the gateway's limiter); the first error is raised."""
    from concurrent.futures import ThreadPoolExecutor

    if not keys:
        return {}
    if len(keys) == 1:
        return {keys[0]: fn(keys[0])}
    with ThreadPoolExecutor(max_workers=min(len(keys), gateway.concurrency)) as pool:
        return dict(zip(keys, pool.map(fn, keys), strict=True))


def subscriptions_of_customers(
    gateway: Gateway, customers: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Each customer's subscriptions (status=all), the customers listed concurrently."""
    return _concurrently(
        gateway, lambda cus: list(iter_subscriptions(gateway, status="all", customer=cus)),
        list(dict.fromkeys(customers)),
    )


def retrieve_invoices(gateway: Gateway, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """Several invoices at once (None for 404s)."""
    return _concurrently(gateway, lambda iid: retrieve_invoice(gateway, iid), list(dict.fromkeys(ids)))


def retrieve_subscriptions(gateway: Gateway, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """Several subscriptions at once (None for 404s), paced by the gateway's limiter."""
    return _concurrently(
        gateway, lambda sid: retrieve_subscription(gateway, sid), list(dict.fromkeys(ids))
    )


def _or_none(gateway: Gateway, fetch: Callable[[], Any]) -> dict[str, Any] | None:
    try:
        return to_dict(gateway.call(fetch))
    except StripeAPIError as exc:
        if exc.http_status == 404:
            return None
        raise


def retrieve_subscription(gateway: Gateway, subscription_id: str) -> dict[str, Any] | None:
    """One subscription, or None if Stripe does not know it (404)."""
    return _or_none(gateway, lambda: gateway.client.v1.subscriptions.retrieve(subscription_id))


def retrieve_invoice(gateway: Gateway, invoice_id: str) -> dict[str, Any] | None:
    """One invoice, or None on 404."""
    return _or_none(gateway, lambda: gateway.client.v1.invoices.retrieve(invoice_id))
