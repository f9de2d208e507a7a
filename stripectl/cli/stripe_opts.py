"""Options for the commands that talk to Stripe, and opening the gateway.

One definition for payments, checkout, sync, reconcile, access and events,
so the flags, env vars and the key-mode guard read the same everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from stripectl.cli.common import Ctx
    from stripectl.gateway.client import GatewaySettings

ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="Stripe secret key (env STRIPE_API_KEY, then STRIPE_SECRET_KEY). Live keys need --live.",
        show_default=False,
    ),
]
ApiBaseOpt = Annotated[
    str | None,
    typer.Option(
        "--api-base",
        help="Stripe API base URL, e.g. a local test server (env STRIPECTL_API_BASE).",
        show_default=False,
    ),
]
LiveOpt = Annotated[bool, typer.Option("--live", help="Allow a live-mode key (sk_live_/rk_live_).")]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds to wait for each HTTP answer from Stripe.")
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        "--network-retries",
        min=0,
        max=5,
        help="SDK retries on network errors / 409 / 5xx (always with the same key).",
    ),
]
MaxRpsOpt = Annotated[
    float | None,
    typer.Option(
        "--max-rps",
        min=0.1,
        help="Requests per second this process sends, at most, in any second (default 20: "
        "80% of Stripe's per-endpoint limit of 25/s in either mode; raise it where Stripe "
        "raised yours). A 429 pauses every request and slows the pace.",
        show_default=False,
    ),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        min=1,
        max=64,
        help="Listing windows fetched at once (default: max-rps / 2, between 2 and 32).",
        show_default=False,
    ),
]
GraceOpt = Annotated[
    str,
    typer.Option(help="past_due access: retry (while a retry is scheduled), none, always, or Nd."),
]


def check_grace(value: str) -> str:
    from stripectl.errors import UsageError
    from stripectl.webhooks.statemachine import parse_grace

    try:
        return parse_grace(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def gateway_settings(
    api_key: str | None,
    api_base: str | None,
    live: bool,
    timeout: float = 30.0,
    retries: int = 2,
    *,
    max_rps: float | None = None,
    concurrency: int | None = None,
) -> GatewaySettings:
    from stripectl.gateway.client import GatewaySettings

    return GatewaySettings(
        api_key=api_key, api_base=api_base, live=live, timeout=timeout, max_network_retries=retries,
        max_rps=max_rps, concurrency=concurrency,
    )


def checked_settings(
    ctx: Ctx,
    api_key: str | None,
    api_base: str | None,
    live: bool,
    timeout: float = 30.0,
    retries: int = 2,
    *,
    max_rps: float | None = None,
    concurrency: int | None = None,
) -> GatewaySettings:
    """The gateway settings, refused now if the key or base URL is wrong:
    before the mirror is opened, so a config error creates no file."""
    from stripectl.services.connection import check_stripe_settings

    settings = gateway_settings(
        api_key, api_base, live, timeout, retries, max_rps=max_rps, concurrency=concurrency
    )
    for warning in check_stripe_settings(settings):
        ctx.note(f"warning: {warning}")
    return settings
