"""`stripectl payments create`: a PaymentIntent that a re-run can never charge twice.

Also holds the Stripe connection and ledger options that `checkout create`
shares.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from stripectl.cli.common import (
    EXIT_CODES_HELP,
    SUGGEST_COMMANDS,
    Ctx,
    DbOpt,
    DebugOpt,
    JsonOpt,
    guarded,
    make_ctx,
)
from stripectl.cli.stripe_opts import (
    ApiBaseOpt,
    ApiKeyOpt,
    LiveOpt,
    RetriesOpt,
    TimeoutOpt,
    gateway_settings,
)

if TYPE_CHECKING:
    from stripectl.gateway.client import Gateway, GatewaySettings
    from stripectl.services.ledger import LedgerOptions
    from stripectl.store import Store

R = TypeVar("R")

payments_app = typer.Typer(
    suggest_commands=SUGGEST_COMMANDS,
    name="payments",
    help="Idempotent payment intents. Example: stripectl payments create --amount 1050 "
    "--currency usd --order-ref ord_1001",
    no_args_is_help=True,
)

# --- options shared with `checkout create` ------------------------------------

IdemKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Use this key instead of the one derived from the business identity "
        "(max 255 printable ASCII characters).",
        show_default=False,
    ),
]
AllowStaleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-stale-key",
        help="Send a key first used more than 24 h ago (Stripe may have pruned it, so this "
        "can create a second object).",
    ),
]
WaitOpt = Annotated[
    float | None,
    typer.Option(
        "--wait",
        min=0.0,
        help="Seconds to wait while another stripectl is sending the same key "
        "(default: as long as its lease can last).",
        show_default=False,
    ),
]
MetadataOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--metadata",
        help="key=value (repeatable; max 50 keys, key <= 40 chars, value <= 500 chars).",
        show_default=False,
    ),
]


def run_ledgered(
    ctx: Ctx,
    settings: GatewaySettings,
    *,
    allow_stale_key: bool,
    wait: float | None,
    create: Callable[[Store, Gateway, LedgerOptions, Callable[[str], None]], R],
) -> R:
    """Open the mirror and Stripe, run one ledgered mutation, close the mirror.

    Shared by `payments create` and `checkout create`, so both take the same
    lease length (from the timeout and retries) and the same key-mode guard.
    """
    from stripectl.services.connection import check_stripe_settings, open_gateway
    from stripectl.services.ledger import LedgerOptions, lease_seconds
    from stripectl.store import open_store

    for warning in check_stripe_settings(settings):  # before the mirror file is created
        ctx.note(f"warning: {warning}")
    options = LedgerOptions(
        allow_stale_key=allow_stale_key,
        lease_seconds=lease_seconds(settings.timeout, settings.max_network_retries),
        wait_seconds=wait,
    )
    store = open_store(ctx.db, schema=ctx.schema)
    try:
        return create(store, open_gateway(store, settings), options, ctx.note)
    finally:
        store.close()


def emit_json_unredacted(data: Any) -> None:
    """Only for output the operator explicitly asked to contain a client secret."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_fields(ctx: Ctx, rows: list[tuple[str, str]]) -> None:
    # Plain aligned lines, never wrapped: ids and URLs must stay copy-pasteable.
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        ctx.out.print(f"{name:<{width}}{value}", markup=False, highlight=False, soft_wrap=True)


# --- payments create ----------------------------------------------------------

CREATE_HELP = f"""Create a PaymentIntent through the idempotency ledger.

Exactly one of --order-ref and --idempotency-key: the key is
--idempotency-key, or derived from --order-ref
(stripectl:pi:<sha256(order ref)[:32]>): never random, so re-running the same
command after a timeout, a crash or a success replays Stripe's first answer
(`replayed: yes`) instead of charging again. The ledger row is committed
before the request is sent; the same key with other parameters is refused
before any request, naming what differs. Two invocations of the same payment
at once are serialised: the second waits, then replays.

The status printed is provisional: grant access when the
payment_intent.succeeded webhook arrives, never from this output. The client
secret is only printed with --show-client-secret.

Examples:

  stripectl payments create --amount 1050 --currency usd --order-ref ord_1001 \\
      --customer cus_123 --payment-method pm_card_visa --confirm

  stripectl payments create --amount 500 --currency jpy --order-ref ord_1002 --json

Test cards and pm_card_* tokens: stripectl cards. A decline exits 4; Stripe
keeps the decline for that key, so retrying with another card needs a new
--order-ref or --idempotency-key.

{EXIT_CODES_HELP}
"""


@payments_app.command("create", help=CREATE_HELP)
@guarded
def create(
    tctx: typer.Context,
    amount: Annotated[
        str,
        typer.Option(
            "--amount",
            help="Integer amount in the currency's minor unit: 1050 usd = 10.50 USD, "
            "500 jpy = 500 JPY (1..99999999).",
            show_default=False,
        ),
    ],
    currency: Annotated[
        str,
        typer.Option("--currency", help="ISO 4217 code, e.g. usd, eur, jpy.", show_default=False),
    ],
    order_ref: Annotated[
        str | None,
        typer.Option(
            "--order-ref",
            help="Your order's id: the payment's identity (derives the key; kept in metadata). "
            "Exactly one of --order-ref / --idempotency-key.",
            show_default=False,
        ),
    ] = None,
    idempotency_key: IdemKeyOpt = None,
    customer: Annotated[
        str | None, typer.Option("--customer", help="Customer id (cus_...).", show_default=False)
    ] = None,
    payment_method: Annotated[
        str | None,
        typer.Option(
            "--payment-method",
            help="PaymentMethod id, e.g. pm_card_visa in test mode.",
            show_default=False,
        ),
    ] = None,
    payment_method_type: Annotated[
        list[str] | None,
        typer.Option(
            "--payment-method-type",
            help="Allowed payment method types (repeatable; with --confirm the default is card).",
            show_default=False,
        ),
    ] = None,
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Confirm now (charges the payment method).")
    ] = False,
    metadata: MetadataOpt = None,
    description: Annotated[
        str | None, typer.Option("--description", help="Description.", show_default=False)
    ] = None,
    show_client_secret: Annotated[
        bool,
        typer.Option("--show-client-secret", help="Also print the client secret (sensitive)."),
    ] = False,
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
    from stripectl import money
    from stripectl.services.payments import (
        ACCESS_NOTE,
        PaymentRequest,
        create_payment,
        parse_metadata,
        prepare_payment,
    )

    req = PaymentRequest(
        amount=money.parse_amount(amount),
        currency=currency,
        order_ref=order_ref,
        idempotency_key=idempotency_key,
        customer=customer,
        payment_method=payment_method,
        payment_method_types=tuple(payment_method_type or ()),
        confirm=confirm,
        description=description,
        metadata=parse_metadata(metadata),
    )
    prepare_payment(req)  # usage errors before the mirror file is touched
    result = run_ledgered(
        ctx,
        gateway_settings(api_key, api_base, live, timeout, network_retries),
        allow_stale_key=allow_stale_key,
        wait=wait,
        create=lambda store, gw, options, notify: create_payment(
            store, gw, req, options=options, notify=notify
        ),
    )

    for warning in result.warnings:
        ctx.note(f"warning: {warning}")
    data = result.to_json(show_client_secret=show_client_secret)
    if ctx.json:
        if show_client_secret:
            emit_json_unredacted(data)
        else:
            ctx.emit_json(data)
    else:
        amount_line = data["amount_display"]
        symbol = money.format_symbol(int(data["amount"]), str(data["currency"]))
        if not amount_line.startswith(symbol):
            amount_line = f"{amount_line} ({symbol})"
        rows = [
            ("payment intent", str(data["id"])),
            ("status", f"{data['status']} (provisional)"),
            ("amount", amount_line),
            ("idempotency key", result.idempotency_key),
            ("replayed", f"{'yes' if result.replayed else 'no'} (attempt {result.attempt})"),
        ]
        if data["next_action"]:
            rows.append(("next action", str(data["next_action"])))
        if show_client_secret:
            rows.append(("client secret", str(data.get("client_secret"))))
        print_fields(ctx, rows)
    ctx.note(ACCESS_NOTE)
