"""One GET of a Stripe list endpoint, parsed to plain dicts with orjson.

The request goes through `StripeClient.raw_request` as before (auth,
version headers, the paced http client, the SDK's network retries and its
error mapping to stripe.* exceptions, mapped again by `gateway.call`). Only
the parsing of a 2xx body moves here: the paced client keeps the bytes
(`PacedRequestsClient.keeping_body`, why in `KeptBody`) and orjson turns
them into dicts, instead of the SDK's stdlib parse into OrderedDicts that
the listing code only read as dicts anyway.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from stripectl.errors import StripeAPIError
from stripectl.gateway.client import Gateway


def _parse(path: str, body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # input only stdlib accepts (NaN, huge numbers): what the SDK parsed
        return json.loads(body.decode("utf-8"))
    except ValueError as exc:  # the SDK's "Invalid response body from API"
        raise StripeAPIError(f"invalid response body from Stripe: {path} ({exc})") from None


def list_page(gateway: Gateway, path: str, params: dict[str, Any]) -> tuple[list[Any], bool]:
    """(data, has_more) of one page; StripeAPIError on anything but a list."""
    http = gateway.http
    if http is None:
        body: Any = gateway.call(lambda: gateway.client.raw_request("get", path, **params)).data
    else:
        with http.keeping_body() as kept:
            resp = gateway.call(lambda: gateway.client.raw_request("get", path, **params))
        body = resp.data if kept.body is None else _parse(path, kept.body)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        # Outside gateway.call: a stripe.* exception here would escape as a bug (exit 70).
        raise StripeAPIError(f"unexpected list response from Stripe: {path} without a data list")
    return body["data"], bool(body.get("has_more"))
