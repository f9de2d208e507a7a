"""Building a StripeClient, the key-mode guard, and error mapping.

Other gateway modules (payments, subscriptions, events) take a `Gateway` and
call `gateway.client.v1...` inside `gateway.call()`, which turns stripe errors
into stripectl errors with the documented exit codes.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stripectl.errors import (
    CardDeclined,
    ConfigError,
    IdempotencyConflict,
    NetworkError,
    StripeAPIError,
    UsageError,
)
from stripectl.gateway.pacing import DEFAULT_MAX_RPS, PacedRequestsClient, RateLimiter
from stripectl.gateway.sdk import stripe
from stripectl.redact import mask, redact

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 2
DEFAULT_API_BASE = "https://api.stripe.com"


@dataclass(frozen=True)
class GatewaySettings:
    # repr=False: settings end up in tracebacks and debug logs; the key must not.
    api_key: str | None = field(default=None, repr=False)
    api_base: str | None = None
    live: bool = False
    timeout: float = DEFAULT_TIMEOUT
    max_network_retries: int = DEFAULT_RETRIES
    max_rps: float | None = None  # None: gateway/pacing.DEFAULT_MAX_RPS for the key's mode
    concurrency: int | None = None  # windows in flight; None: enough for max_rps


def resolve_api_key(flag: str | None) -> str:
    """--api-key, then STRIPE_API_KEY, then STRIPE_SECRET_KEY."""
    key = flag or os.environ.get("STRIPE_API_KEY") or os.environ.get("STRIPE_SECRET_KEY")
    if not key:
        raise ConfigError(
            "no Stripe API key",
            hint="pass --api-key or set STRIPE_API_KEY (use an sk_test_ key)",
        )
    return key.strip()


def key_is_live(key: str) -> bool:
    return key.startswith(("sk_live_", "rk_live_"))


def check_key_mode(key: str, *, live: bool, mirror_livemode: bool | None = None) -> None:
    """Refuse keys that could do damage by accident."""
    if key.startswith("pk_"):
        raise ConfigError(
            f"{mask(key)} is a publishable key; server calls need a secret key (sk_ or rk_)"
        )
    if not key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
        raise ConfigError(f"{mask(key)} does not look like a Stripe secret key (sk_/rk_)")
    if key_is_live(key) and not live:
        raise ConfigError(
            f"{mask(key)} is a LIVE key: refused without --live",
            hint="add --live if you really mean to act on live data",
        )
    if mirror_livemode is not None and mirror_livemode != key_is_live(key):
        mode = "live" if mirror_livemode else "test"
        raise ConfigError(
            f"the mirror holds {mode}-mode data but {mask(key)} is a "
            f"{'live' if key_is_live(key) else 'test'}-mode key",
            hint="use a separate --db per mode",
        )


def api_base_of(settings: GatewaySettings) -> str | None:
    """--api-base, then STRIPECTL_API_BASE; None: Stripe's own."""
    return settings.api_base or os.environ.get("STRIPECTL_API_BASE") or None


def check_settings(settings: GatewaySettings) -> list[str]:
    """Everything about the key and the base URL that can be refused before
    any request (and before the mirror file is opened: a config error must
    leave nothing behind). Returns warnings for the operator."""
    key = resolve_api_key(settings.api_key)
    check_key_mode(key, live=settings.live)
    api_base = api_base_of(settings)
    if api_base and not api_base.startswith(("http://", "https://")):
        raise UsageError(f"--api-base must be an http(s) URL, got {api_base!r}")
    warnings = []
    if settings.live and not key_is_live(key):
        warnings.append(
            f"--live given, but {mask(key)} is a test-mode key: this run reads and writes test data"
        )
    return warnings


@dataclass
class Gateway:
    client: stripe.StripeClient
    settings: GatewaySettings
    key: str = field(repr=False)
    limiter: RateLimiter | None = None  # shared by every request of this process
    http: PacedRequestsClient | None = None  # the client handed to the SDK

    @property
    def livemode(self) -> bool:
        return key_is_live(self.key)

    @property
    def concurrency(self) -> int:
        """Listing windows in flight: --concurrency, or enough to keep the
        limiter busy at up to ~500 ms a request (rps / 2, 2..32)."""
        if self.settings.concurrency is not None:
            return max(1, self.settings.concurrency)
        rate = self.limiter.max_rate if self.limiter is not None else 20.0
        return min(32, max(2, math.ceil(rate / 2)))

    def call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except stripe.StripeError as exc:
            raise map_stripe_error(exc, self.settings) from exc


def connect(settings: GatewaySettings, *, mirror_livemode: bool | None = None) -> Gateway:
    check_settings(settings)
    key = resolve_api_key(settings.api_key)
    check_key_mode(key, live=settings.live, mirror_livemode=mirror_livemode)
    api_base = api_base_of(settings)
    rate = settings.max_rps or DEFAULT_MAX_RPS["live" if key_is_live(key) else "test"]
    if rate <= 0:
        raise UsageError(f"--max-rps must be positive, got {rate}")
    limiter = RateLimiter(rate)
    # The SDK's public extension point: every request and retry passes the limiter.
    http_client = PacedRequestsClient(limiter, timeout=settings.timeout)
    client = stripe.StripeClient(
        key,
        base_addresses={"api": api_base.rstrip("/")} if api_base else None,
        max_network_retries=settings.max_network_retries,
        http_client=http_client,
    )
    return Gateway(client=client, settings=settings, key=key, limiter=limiter, http=http_client)


def to_dict(obj: Any) -> dict[str, Any]:
    """StripeObject -> plain dict (StripeObject is not a dict since stripe 15)."""
    if isinstance(obj, dict):
        return obj
    result: dict[str, Any] = obj.to_dict()
    return result


def response_headers(obj: Any) -> dict[str, str]:
    resp = getattr(obj, "last_response", None)
    headers = getattr(resp, "headers", None) or {}
    return {str(k).lower(): str(v) for k, v in dict(headers).items()}


_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\"()\]]+)")


def network_reason(message: str) -> str:
    """The cause in the SDK's four-line connection message ("Unexpected error
    communicating with Stripe ... (Network error: ConnectionError:
    HTTPConnectionPool(...): Max retries exceeded ... [Errno 111] Connection
    refused'))"): "Connection refused", "timed out", ..."""
    detail = message.rpartition("(Network error:")[2].strip().rstrip(")") or message
    found = _ERRNO_TEXT.search(detail)
    if found:
        return found.group(1).strip()
    if "timed out" in detail.lower():
        return "timed out"
    name = detail.partition(":")[0].strip()
    return name if name and len(name) < 60 else " ".join(detail.split())[:120]


def map_stripe_error(exc: stripe.StripeError, settings: GatewaySettings | None = None) -> Exception:
    if isinstance(exc, stripe.APIConnectionError):
        where = (api_base_of(settings) if settings else None) or DEFAULT_API_BASE
        timeout = settings.timeout if settings else DEFAULT_TIMEOUT
        retries = settings.max_network_retries if settings else DEFAULT_RETRIES
        return NetworkError(
            f"cannot reach Stripe at {where}: {redact(network_reason(str(exc)))}",
            hint=f"check the network and --api-base (this run: --timeout {timeout:g} s a request, "
            f"--network-retries {retries})",
        )
    msg = redact(exc.user_message or str(exc) or type(exc).__name__)
    status = exc.http_status
    code = exc.code
    if isinstance(exc, stripe.CardError):
        decline = getattr(exc, "decline_code", None) or (
            exc.error.decline_code if exc.error else None
        )
        return CardDeclined(
            f"card declined: {msg}" + (f" (decline_code={decline})" if decline else ""),
            code=code,
            decline_code=decline,
            http_status=status,
        )
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyConflict(
            f"Stripe refused the idempotency key: {msg}",
            hint="the same key was used with different parameters",
            code="idempotency_error",
            http_status=status,
        )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return ConfigError(f"Stripe refused the API key: {msg}")
    if isinstance(exc, stripe.RateLimitError):
        return StripeAPIError(
            f"rate limited by Stripe after retries: {msg}", code=code, http_status=status
        )
    if status == 409:
        # Stripe answers 409 (code idempotency_key_in_use) while another request
        # with the same key is still executing; nothing is saved for this one.
        return StripeAPIError(
            f"another request with this idempotency key is still in progress at Stripe: {msg}",
            hint="wait a moment and re-run: the same key then replays the first request's result",
            code=code or "idempotency_key_in_use",
            http_status=status,
        )
    return StripeAPIError(f"Stripe API error ({status}): {msg}", code=code, http_status=status)


def parse_livemode(value: str | None) -> bool | None:
    """The mirror's mode as kept in `meta.livemode` ("1"/"0"; None while unknown)."""
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in ("1", "true", "live")
