"""GET requests on urllib3 directly, for `PacedRequestsClient` (gateway/pacing.py).

Why: requests reads a body through `iter_content` in 10 KB chunks and merges
the environment's settings into every request; a 300 KB list page cost
~2.5 ms of CPU there against ~0.7 ms on the urllib3 pool underneath it. At
100 req/s that CPU is held under the GIL that the thread writing the mirror
needs: a sync of 100,000 subscriptions took 18 s through requests and 14 s
through this (bench/listing.py, floor 10 s).

What is kept of the SDK's RequestsClient: stripe-python's CA bundle and
certificate checks, the same timeout for connect and read, no redirects
followed (Stripe's API sends none), compressed answers asked for and
decoded, and the same `stripe.APIConnectionError`
(message text included: gateway/client.network_reason reads it) with the
same retry decision: a timeout or a failed connection is retried by the SDK,
a certificate error is not. Answers of every status are returned as they
are; the SDK maps them. Writes (POST, DELETE) stay on requests, and so does
every request when the environment names a proxy for the host (requests'
proxy rules, NO_PROXY included, are not reimplemented here).
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

import urllib3

from stripectl.gateway.sdk import stripe

_POOL_SIZE = 64  # connections kept per host: at least the listing's --concurrency cap (32)

_MESSAGE = (
    "Unexpected error communicating with Stripe.  If this problem persists, "
    "let us know at support@stripe.com."
)
_SSL_MESSAGE = (
    "Could not verify Stripe's SSL certificate.  Please make sure that your "
    "network is not intercepting certificates.  If this problem persists, let "
    "us know at support@stripe.com."
)


class DirectGet:
    """A urllib3 pool for GETs; `usable(url)` says whether it may serve one."""

    def __init__(self, timeout: float) -> None:
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.pool = urllib3.PoolManager(
            maxsize=_POOL_SIZE, cert_reqs="CERT_REQUIRED", ca_certs=stripe.ca_bundle_path
        )
        self._direct: dict[str, bool] = {}
        self._lock = threading.Lock()

    def usable(self, url: str) -> bool:
        """No proxy configured for this scheme and host (decided once per host)."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            known = self._direct.get(key)
        if known is None:
            from requests.utils import get_environ_proxies

            known = not get_environ_proxies(key)
            with self._lock:
                self._direct[key] = known
        return known

    def get(self, url: str, headers: Mapping[str, str] | None) -> tuple[bytes, int, Mapping[str, str]]:
        # As requests asks: Stripe compresses a 300 KB page to a tenth.
        sent = {"Accept-Encoding": "gzip, deflate", **(headers or {})}
        try:
            resp = self.pool.request(
                "GET", url, headers=sent, timeout=self.timeout,
                retries=False, redirect=False,
            )
        except urllib3.exceptions.SSLError as exc:
            raise _connection_error(_SSL_MESSAGE, exc, should_retry=False) from exc
        except urllib3.exceptions.HTTPError as exc:
            # Timeouts, refused or reset connections, truncated answers.
            raise _connection_error(_MESSAGE, exc, should_retry=True) from exc
        return resp.data, resp.status, resp.headers


def _connection_error(message: str, exc: Exception, *, should_retry: bool) -> stripe.APIConnectionError:
    # The layout of the SDK's own message: "<text>\n\n(Network error: <Type>: <detail>)".
    text = textwrap.fill(message) + f"\n\n(Network error: {type(exc).__name__}: {exc})"
    return stripe.APIConnectionError(text, should_retry=should_retry)  # type: ignore[no-untyped-call]
