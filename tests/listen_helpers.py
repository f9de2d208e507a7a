"""Posting signed deliveries to a listener over real loopback sockets."""

from __future__ import annotations

import http.client
import time
from typing import Any
from urllib.parse import urlsplit

from tests import factories as f

SECRET = f.EXAMPLE_SECRET
PATH = "/webhooks/stripe"


def customer_event(n: int | str, created: int | None = None) -> dict[str, Any]:
    return f.event(
        "customer.created",
        f.customer(f"cus_l{n}"),
        id=f"evt_l{n}",
        created=created if created is not None else f.T0 + 1,
    )


def signed(
    event: dict[str, Any], *, secret: str = SECRET, t: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A delivery as Stripe sends it now: fresh signature over the compact body."""
    body = f.body_of(event)
    stamp = int(time.time()) if t is None else t
    return body.encode(), {
        "Stripe-Signature": f.sign(body, secret, stamp),
        "Content-Type": "application/json",
    }


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 20) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
