"""One GET of a Stripe list endpoint, parsed to plain dicts with orjson.

The request goes through `StripeClient.raw_request` as before (auth,
version headers, the paced http client, the SDK's network retries and its
error mapping to stripe.* exceptions, mapped again by `gateway.call`). Only
the parsing of a 2xx body moves here: the paced client keeps the bytes
(`PacedRequestsClient.keeping_body`, why in `KeptBody`) and orjson turns
them into dicts, instead of the SDK's stdlib parse into OrderedDicts that
the listing code only read as dicts anyway. `digested_page` hands the bytes
to a `PageDigester` instead (gateway/page_pool.py: parsed, and made into
mirror rows, in a helper process once a listing is large).
"""

from __future__ import annotations

from typing import Any

from stripectl.errors import StripeAPIError
from stripectl.gateway.client import Gateway
from stripectl.gateway.page_pool import PATH, BodyError, PageDigester, digest_doc, parse_body
from stripectl.gateway.windows import Page, checked_keys


def _body(gateway: Gateway, path: str, params: dict[str, Any]) -> tuple[bytes | None, Any]:
    """(raw 2xx body, None), or (None, what the SDK parsed) without a paced client."""
    http = gateway.http
    if http is None:
        return None, gateway.call(lambda: gateway.client.raw_request("get", path, **params)).data
    with http.keeping_body() as kept:
        resp = gateway.call(lambda: gateway.client.raw_request("get", path, **params))
    return (kept.body, None) if kept.body is not None else (None, resp.data)


def list_page(gateway: Gateway, path: str, params: dict[str, Any]) -> tuple[list[Any], bool]:
    """(data, has_more) of one page; StripeAPIError on anything but a list."""
    raw, body = _body(gateway, path, params)
    if raw is not None:
        try:
            body = parse_body(raw)
        except BodyError as exc:  # the SDK's "Invalid response body from API"
            raise StripeAPIError(f"invalid response body from Stripe: {path} ({exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        # Outside gateway.call: a stripe.* exception here would escape as a bug (exit 70).
        raise StripeAPIError(f"unexpected list response from Stripe: {path} without a data list")
    return body["data"], bool(body.get("has_more"))


def digested_page(
    gateway: Gateway, path: str, params: dict[str, Any], digester: PageDigester
) -> Page:
    """One page as a windows.Page of digester.transform(object) per object."""
    raw, body = _body(gateway, path, params)
    # Without a raw body (no paced client): the same digest, of the SDK's parse.
    result = digester(raw) if raw is not None else digest_doc(body, digester.transform)
    if isinstance(result, str):
        raise StripeAPIError(result.replace(PATH, path))
    keys, items, has_more = result
    return Page(checked_keys(keys), items, has_more)
