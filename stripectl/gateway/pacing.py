"""One client-side rate limiter per gateway (a command builds one: per process).

`PacedRequestsClient` is stripe-python's own `RequestsClient` (handed to
`StripeClient(http_client=...)`, the SDK's public extension point), its GETs
sent on urllib3 directly (gateway/transport.py says why), with two additions
in `request()`, which the SDK calls once per attempt, its own network
retries included:

- before each attempt it takes a slot from the shared `RateLimiter`;
- a 429 to a read (GET) is waited out and sent again here (the SDK itself
  retries a 429 only when Stripe sends `Stripe-Should-Retry: true`, and
  never honours `Retry-After`): `Stripe-Should-Retry: false` is returned at
  once, a `Retry-After` is waited as asked, otherwise exponential backoff
  with jitter. Every thread pauses with it, and the pace drops by a quarter,
  recovering slowly, so a `--max-rps` above the account's real limit settles
  below it. Writes keep the SDK's own contract (`--network-retries`, the
  same idempotency key); their 429s still slow the pace.

The limiter starts at most floor(rate) requests in any 1.04 s (a sliding
window over the real start times, taken when each waiting thread actually
woke), on a schedule `1.04 / rate` apart that a start may run ahead of by
3 spacings at most (no burst of a second's worth): no 1-second window, on
our clock or on a server's that sees our requests up to 20 ms late or early,
holds more than `rate` requests, and a thread that woke late is caught up
rather than lost.
Connection errors, 409 and 5xx stay with the SDK's retries
(`max_network_retries`, which honour `Stripe-Should-Retry`).

Stripe's limits (https://docs.stripe.com/rate-limits, checked 2026-12): 100
requests/s in live mode, 25 in a sandbox / test mode, and individual API
endpoints default to 25 requests/s. A listing reads one endpoint, so the safe
default is 20 requests/s in either mode (80% of the per-endpoint limit, room
for the account's other traffic); raise `--max-rps` where Stripe raised the
account's limits.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stripectl.gateway.sdk import stripe
from stripectl.gateway.transport import DirectGet

DEFAULT_MAX_RPS = {"test": 20.0, "live": 20.0}
WINDOW = 1.04  # seconds in which at most floor(rate) requests start: 40 ms of jitter
SPACING_MARGIN = 1.04  # the nominal spacing, 4% wider than 1 / rate
BURST = 3  # starts at most this many spacings early (catch-up after a late wake-up)
MAX_429_RETRIES = 8
BACKOFF_START = 0.5
BACKOFF_CAP = 16.0
_RECOVER_AFTER = 2.0  # seconds without a 429 before the pace steps back up


class RateLimiter:
    """Thread-safe pacing of request starts: at most `rate` in any second."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.max_rate = float(rate)
        self.rate = float(rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # the state below
        self._turn = threading.Lock()  # one thread waits for the next slot at a time
        # The starts of the last `cap` requests (cap <= floor(max_rate)).
        self._starts: deque[float] = deque(maxlen=max(1, math.floor(rate)))
        self._tat = float("-inf")  # the next start on schedule (GCRA's theoretical arrival)
        self._paused_until = 0.0
        self._last_cut = float("-inf")  # the last 429 that slowed the pace
        self._last_step = float("-inf")  # the last change of pace
        self.acquired = 0
        self.throttled = 0  # 429s seen

    @property
    def cap(self) -> int:
        """Requests allowed in any `WINDOW` seconds at the current pace."""
        return max(1, min(math.floor(self.rate), self._starts.maxlen or 1))

    @property
    def interval(self) -> float:
        return SPACING_MARGIN / self.rate

    def _earliest(self, now: float) -> float:
        start = max(now, self._paused_until, self._tat - BURST * self.interval)
        cap = self.cap
        if len(self._starts) >= cap:
            start = max(start, self._starts[-cap] + WINDOW)
        return start

    def acquire(self) -> None:
        """Block until this thread may start a request.

        Starts follow a schedule one spacing apart (GCRA), any of them up to
        `BURST` spacings early, and at most floor(rate) of them, counted
        when each thread actually woke, fall in any `WINDOW`: a thread woken
        late (the GIL, a busy machine) is caught up by the next ones instead
        of stretching every interval after it (a spacing counted from each
        wake-up did: 56 of 100 req/s with 32 threads and a busy consumer,
        bench/listing.py).
        """
        with self._turn:
            while True:
                with self._lock:
                    now = self._clock()
                    start = self._earliest(now)
                if start <= now:
                    break
                self._sleep(start - now)
            with self._lock:
                started = self._clock()
                self._starts.append(started)
                self._tat = max(self._tat, started) + self.interval
                self.acquired += 1

    def throttled_for(self, seconds: float) -> None:
        """A 429: every thread waits `seconds`; the pace drops by a quarter, at
        most once a second (the 429s of one burst are one signal, not many)."""
        with self._lock:
            now = self._clock()
            self.throttled += 1
            if now - self._last_cut >= 1.0:
                self.rate = max(1.0, self.rate * 0.75)
                self._last_cut = now
            self._last_step = now
            self._paused_until = max(self._paused_until, now + seconds)

    def succeeded(self) -> None:
        """Back towards the configured pace: +25% a second after 2 s without a 429."""
        if self.rate >= self.max_rate:
            return
        with self._lock:
            now = self._clock()
            if now - self._last_cut >= _RECOVER_AFTER and now - self._last_step >= 1.0:
                self.rate = min(self.max_rate, self.rate * 1.25)
                self._last_step = now


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return None


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """`Retry-After` in seconds (delta form only; capped), None when absent or unreadable."""
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return min(max(value, 0.0), 60.0)


@dataclass
class KeptBody:
    """The raw body of a 2xx answer, kept by `keeping_body()` for the caller.

    Why: `StripeClient.raw_request` parses every body with stdlib
    `json.loads(..., object_pairs_hook=OrderedDict)`, ~7 ms for a page of
    100 subscriptions, about two thirds of a listing's CPU (py-spy, bench/
    listing.py at 100 req/s). List pages are wanted as plain dicts only, so
    the gateway parses the kept bytes with orjson (~10x faster) and the SDK
    parses `{}`. Errors (non-2xx) reach the SDK untouched, so its error
    mapping, retries and headers are unchanged.
    """

    body: bytes | None = None


class PacedRequestsClient(stripe.RequestsClient):
    """stripe-python's RequestsClient behind a shared limiter, with 429 backoff;
    its GETs on urllib3 directly (gateway/transport.py)."""

    name = "requests"

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        timeout: float = 80,
        max_429_retries: int = MAX_429_RETRIES,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, **kwargs)
        self.direct = DirectGet(timeout)  # GETs (gateway/transport.py says why)
        self.limiter = limiter
        self.max_429_retries = max_429_retries
        self._kept = threading.local()

    def _paced(
        self, method: str, send: Callable[[], tuple[Any, int, Mapping[str, str]]]
    ) -> Any:
        attempt = 0
        while True:
            self.limiter.acquire()
            content, status, headers = send()
            if status != 429:
                self.limiter.succeeded()
                return content, status, headers
            if method.lower() != "get":
                # Writes keep the SDK's own retry contract (--network-retries,
                # same idempotency key); the pace still drops for everyone.
                self.limiter.throttled_for(0.0)
                return content, status, headers
            if _header(headers, "stripe-should-retry") == "false":
                return content, status, headers  # Stripe says retrying would not help
            if attempt >= self.max_429_retries:
                return content, status, headers  # -> stripe.RateLimitError, exit 4
            attempt += 1
            wait = retry_after_seconds(headers)
            if wait is None:
                wait = min(BACKOFF_CAP, BACKOFF_START * 2 ** (attempt - 1))
                wait *= 0.5 + random.random() / 2
            self.limiter.throttled_for(wait)

    @contextmanager
    def keeping_body(self) -> Iterator[KeptBody]:
        """While open, this thread's 2xx bodies are kept for the caller and
        the SDK is handed `{}` in their place (see KeptBody)."""
        kept = KeptBody()
        self._kept.current = kept
        try:
            yield kept
        finally:
            self._kept.current = None

    def request(  # type: ignore[override]
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        result: tuple[bytes, int, Mapping[str, str]]
        if method.lower() == "get" and self.direct.usable(url):
            result = self._paced(method, lambda: self.direct.get(url, headers))
        else:
            send = super().request
            result = self._paced(method, lambda: send(method, url, headers, post_data))
        kept: KeptBody | None = getattr(self._kept, "current", None)
        if kept is not None and 200 <= result[1] < 300:
            kept.body = result[0]
            return b"{}", result[1], result[2]
        return result

    def request_stream(  # type: ignore[override]
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[Any, int, Mapping[str, str]]:
        send = super().request_stream
        result: tuple[Any, int, Mapping[str, str]] = self._paced(
            method, lambda: send(method, url, headers, post_data)
        )
        return result
