"""`stripectl checkout create`: a Checkout Session tied to your user id."""

from __future__ import annotations

from typing import Annotated

import typer

from stripectl.cli.common import (
    EXIT_CODES_HELP,
    SUGGEST_COMMANDS,
    DbOpt,
    DebugOpt,
    JsonOpt,
    guarded,
    make_ctx,
)
from stripectl.cli.payments import (
    AllowStaleOpt,
    IdemKeyOpt,
    MetadataOpt,
    WaitOpt,
    print_fields,
    run_ledgered,
)
from stripectl.cli.stripe_opts import (
    ApiBaseOpt,
    ApiKeyOpt,
    LiveOpt,
    RetriesOpt,
    TimeoutOpt,
    gateway_settings,
)

checkout_app = typer.Typer(
    suggest_commands=SUGGEST_COMMANDS,
    name="checkout",
    help="Idempotent Checkout Sessions. Example: stripectl checkout create --mode subscription "
    "--price price_123 --user-id u_42 --success-url https://example.com/done",
    no_args_is_help=True,
)

CREATE_HELP = f"""Create a Checkout Session through the idempotency ledger.

The user id goes to client_reference_id, to the Session's metadata and to
subscription_data.metadata (subscription mode) or payment_intent_data.metadata
(payment mode), with --plan-name and any --metadata, so later subscription
events carry it. `session_id={{CHECKOUT_SESSION_ID}}` is appended to
--success-url unless the URL already holds the placeholder. The Session is
recorded in the mirror, so a replayed checkout.session.completed links the
subscription to the user.

The idempotency key is --idempotency-key, else derived from user id + mode +
price(s): re-running the same command replays the first Session instead of
opening another. The same user and prices with other parameters (quantity,
URLs, metadata) are refused before any request, naming what differs: pass
--idempotency-key for a deliberately new Session.

Examples:

  stripectl checkout create --mode subscription --price price_pro_monthly \\
      --user-id u_42 --plan-name pro --customer-email ada@example.com \\
      --success-url https://example.com/welcome --cancel-url https://example.com/pricing

  stripectl checkout create --mode payment --price price_a --quantity 2 \\
      --price price_b --user-id u_42 --success-url https://example.com/done --json

{EXIT_CODES_HELP}
"""


@checkout_app.command("create", help=CREATE_HELP)
@guarded
def create(
    tctx: typer.Context,
    user_id: Annotated[
        str,
        typer.Option("--user-id", help="Your user's id (client_reference_id).", show_default=False),
    ],
    price: Annotated[
        list[str],
        typer.Option("--price", help="Price id (repeatable).", show_default=False),
    ],
    success_url: Annotated[
        str,
        typer.Option(
            "--success-url",
            help="Where Stripe sends the customer after paying (session_id is appended).",
            show_default=False,
        ),
    ],
    mode: Annotated[str, typer.Option("--mode", help="subscription or payment.")] = "subscription",
    quantity: Annotated[
        list[int] | None,
        typer.Option(
            "--quantity",
            min=1,
            help="Quantity for the --price at the same position (repeatable; default 1).",
            show_default=False,
        ),
    ] = None,
    customer: Annotated[
        str | None,
        typer.Option("--customer", help="Existing customer id (cus_...).", show_default=False),
    ] = None,
    customer_email: Annotated[
        str | None,
        typer.Option("--customer-email", help="Prefill the email of a new customer.", show_default=False),
    ] = None,
    plan_name: Annotated[
        str | None,
        typer.Option("--plan-name", help="Your plan's name (metadata plan_name).", show_default=False),
    ] = None,
    metadata: MetadataOpt = None,
    cancel_url: Annotated[
        str | None,
        typer.Option("--cancel-url", help="Where the customer goes back to.", show_default=False),
    ] = None,
    idempotency_key: IdemKeyOpt = None,
    allow_stale_key: AllowStaleOpt = False,
    wait: WaitOpt = None,
    api_key: ApiKeyOpt = None,
    api_base: ApiBaseOpt = None,
    live: LiveOpt = False,
    timeout: TimeoutOpt = 30.0,
    network_retries: RetriesOpt = 2,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    from stripectl.services.checkout import CheckoutRequest, create_checkout, prepare_checkout
    from stripectl.services.payments import parse_metadata

    req = CheckoutRequest(
        mode=mode.strip().lower(),
        prices=tuple(price),
        quantities=tuple(quantity or ()),
        user_id=user_id,
        success_url=success_url,
        cancel_url=cancel_url,
        customer=customer,
        customer_email=customer_email,
        plan_name=plan_name,
        metadata=parse_metadata(metadata),
        idempotency_key=idempotency_key,
    )
    prepare_checkout(req)  # usage errors before the mirror file is touched
    result = run_ledgered(
        ctx,
        gateway_settings(api_key, api_base, live, timeout, network_retries),
        allow_stale_key=allow_stale_key,
        wait=wait,
        create=lambda store, gw, options, notify: create_checkout(
            store, gw, req, options=options, notify=notify
        ),
    )

    for warning in result.warnings:
        ctx.note(f"warning: {warning}")
    data = result.to_json()
    if ctx.json:
        ctx.emit_json(data)
        return
    print_fields(
        ctx,
        [
            ("checkout session", str(data["id"])),
            ("url", str(data["url"])),
            ("mode", str(data["mode"])),
            ("user id", str(data["user_id"])),
            ("idempotency key", result.idempotency_key),
            ("replayed", f"{'yes' if result.replayed else 'no'} (attempt {result.attempt})"),
        ],
    )
