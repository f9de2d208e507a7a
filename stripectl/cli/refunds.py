"""`stripectl refunds create`: a refund that a re-run can never repeat."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from stripectl.cli.common import EXIT_CODES_HELP, DbOpt, DebugOpt, JsonOpt, guarded, make_ctx
from stripectl.cli.payments import AllowStaleOpt, MetadataOpt, WaitOpt, print_fields, run_ledgered
from stripectl.cli.stripe_opts import (
    ApiBaseOpt,
    ApiKeyOpt,
    LiveOpt,
    RetriesOpt,
    TimeoutOpt,
    gateway_settings,
)

refunds_app = typer.Typer(
    name="refunds",
    help="Idempotent refunds. Example: stripectl refunds create --payment-intent pi_123 "
    "--amount 500 --refund-ref ticket_881",
    no_args_is_help=True,
)


class Reason(StrEnum):
    duplicate = "duplicate"
    fraudulent = "fraudulent"
    requested_by_customer = "requested_by_customer"


CREATE_HELP = f"""Refund a payment through the idempotency ledger.

The idempotency key is derived from --refund-ref (a support ticket, a return
number): stripectl:re:<sha256(refund ref)[:32]>, never random, so re-running
the same command after a timeout, a crash or a success replays Stripe's first
answer (`replayed: yes`) instead of refunding again. The ref is also stored
in the refund's metadata (refund_ref).

Before anything is sent, the payment's latest charge (amount_captured,
amount_refunded), its refunds on Stripe and the ledger's unanswered refunds
are checked. Refused locally, with the figures (exit 2): a refund larger
than what is left, and a second refund of the same amount on the same payment
under another ref (two agents answering one complaint) unless
--allow-repeat. Two invocations at once are serialised by the ledger: the
second waits for the first and answers with its result, without a request.

Without --amount the rest of the payment is refunded. The status printed is
provisional: the final state comes from the refund.updated / refund.failed
webhooks (stripectl replay-webhook, then stripectl payments show pi_...).

Examples:

  stripectl refunds create --payment-intent pi_3Q... --amount 500 \\
      --reason requested_by_customer --refund-ref ticket_881

  stripectl refunds create --payment-intent pi_3Q... --refund-ref rma_1042 --json

{EXIT_CODES_HELP}
"""


@refunds_app.command("create", help=CREATE_HELP)
@guarded
def create(
    tctx: typer.Context,
    payment_intent: Annotated[
        str,
        typer.Option("--payment-intent", help="The payment to refund (pi_...).", show_default=False),
    ],
    refund_ref: Annotated[
        str,
        typer.Option(
            "--refund-ref",
            help="Your refund's id (ticket, return number): derives the key; kept in metadata.",
            show_default=False,
        ),
    ],
    amount: Annotated[
        str | None,
        typer.Option(
            "--amount",
            help="Integer amount in the currency's minor unit (500 usd = 5.00 USD). "
            "Default: what is left to refund.",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[
        Reason | None, typer.Option("--reason", help="Why (Stripe's refund reasons).", show_default=False)
    ] = None,
    metadata: MetadataOpt = None,
    allow_repeat: Annotated[
        bool,
        typer.Option(
            "--allow-repeat",
            help="Send even though the payment already has a refund of the same amount under "
            "another ref.",
        ),
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
    from stripectl.services.payments import parse_metadata
    from stripectl.services.refunds import (
        REFUND_NOTE,
        RefundRequest,
        create_refund_checked,
        prepare_refund,
    )

    req = RefundRequest(
        payment_intent=payment_intent,
        refund_ref=refund_ref,
        amount=None if amount is None else money.parse_amount(amount),
        reason=reason.value if reason else None,
        metadata=parse_metadata(metadata),
        allow_repeat=allow_repeat,
    )
    prepare_refund(req)  # usage errors before the mirror file is touched
    result = run_ledgered(
        ctx,
        gateway_settings(api_key, api_base, live, timeout, network_retries),
        allow_stale_key=allow_stale_key,
        wait=wait,
        create=lambda store, gw, options, notify: create_refund_checked(
            store, gw, req, options=options, notify=notify
        ),
    )
    for warning in result.warnings:
        ctx.note(f"warning: {warning}")
    data = result.to_json()
    if ctx.json:
        ctx.emit_json(data)
    else:
        fig = data["checked"]
        cur = fig["currency"]
        print_fields(
            ctx,
            [
                ("refund", str(data["id"])),
                ("status", f"{data['status']} (provisional)"),
                ("amount", data["amount_display"]),
                ("payment intent", str(data["payment_intent"])),
                ("refund ref", result.refund_ref),
                (
                    "checked",
                    f"captured {money.format_amount(fig['captured'], cur)}, refunded before "
                    f"{money.format_amount(fig['refunded'], cur)}",
                ),
                ("idempotency key", result.idempotency_key),
                ("replayed", f"{'yes' if result.replayed else 'no'} (attempt {result.attempt})"),
            ],
        )
    ctx.note(REFUND_NOTE)
