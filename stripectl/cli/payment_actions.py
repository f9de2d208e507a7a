"""`stripectl payments capture | cancel | show`: the rest of a payment's life.

Registered on the `payments` group by `register()` (cli/app.py), kept here
so `payments create` stays as it is.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stripectl.cli.common import EXIT_CODES_HELP, Ctx, DbOpt, DebugOpt, JsonOpt, guarded, make_ctx
from stripectl.cli.payments import AllowStaleOpt, WaitOpt, print_fields, run_ledgered
from stripectl.cli.payments import payments_app as _payments_group
from stripectl.cli.stripe_opts import (
    ApiBaseOpt,
    ApiKeyOpt,
    LiveOpt,
    RetriesOpt,
    TimeoutOpt,
    gateway_settings,
)

if TYPE_CHECKING:
    from stripectl.services.payment_actions import ActionResult

IntentArg = Annotated[str, typer.Argument(help="The payment intent (pi_...).", show_default=False)]


class CancelReason(StrEnum):
    duplicate = "duplicate"
    fraudulent = "fraudulent"
    requested_by_customer = "requested_by_customer"
    abandoned = "abandoned"


CAPTURE_HELP = f"""Capture an authorised PaymentIntent (status requires_capture) through the ledger.

The key is derived from the payment intent and the action
(stripectl:capture:<sha256(pi)[:32]>): a re-run replays the first capture
(`replayed: yes`), and a re-run with another --amount is refused before any
request. Without --amount Stripe captures all of amount_capturable. The status
printed is provisional: the final state comes from payment_intent.succeeded.

Examples:

  stripectl payments capture pi_3Q...
  stripectl payments capture pi_3Q... --amount 750 --json

{EXIT_CODES_HELP}
"""

CANCEL_HELP = f"""Cancel a PaymentIntent through the ledger.

Stripe cancels an intent in requires_payment_method, requires_capture,
requires_confirmation, requires_action (rarely processing); an authorised
amount is released. The key is derived from the payment intent and the action
(stripectl:cancel:<sha256(pi)[:32]>), so a re-run replays the first cancel.

Examples:

  stripectl payments cancel pi_3Q... --reason abandoned
  stripectl payments cancel pi_3Q... --json

{EXIT_CODES_HELP}
"""

SHOW_HELP = f"""Show what the mirror knows of a payment, offline.

Status, amounts captured and refunded, its refunds (from webhooks and from
refunds create) and the ledger rows that touched it; nothing is sent to
Stripe.

Examples:

  stripectl payments show pi_3Q...
  stripectl payments show pi_3Q... --json

{EXIT_CODES_HELP}
"""


def _render(ctx: Ctx, result: ActionResult) -> None:
    from stripectl import money
    from stripectl.services.payments import ACCESS_NOTE

    for warning in result.warnings:
        ctx.note(f"warning: {warning}")
    data = result.to_json()
    if ctx.json:
        ctx.emit_json(data)
    else:
        cur = data["currency"]
        rows = [
            ("payment intent", str(data["id"])),
            ("status", f"{data['status']} (provisional)"),
            ("amount", data["amount_display"]),
        ]
        if result.action == "capture":
            rows.append(("received", money.format_amount(int(data["amount_received"] or 0), cur)))
        elif data["cancellation_reason"]:
            rows.append(("reason", str(data["cancellation_reason"])))
        rows += [
            ("idempotency key", result.idempotency_key),
            ("replayed", f"{'yes' if result.replayed else 'no'} (attempt {result.attempt})"),
        ]
        print_fields(ctx, rows)
    ctx.note(ACCESS_NOTE)


def _run(ctx: Ctx, settings: Any, action: str, intent: str, **kw: Any) -> ActionResult:
    from stripectl.services.payment_actions import prepare_action, run_action

    prepare_action(action, intent, amount=kw.get("amount"), reason=kw.get("reason"))
    allow_stale_key, wait = kw.pop("allow_stale_key"), kw.pop("wait")
    return run_ledgered(
        ctx,
        settings,
        allow_stale_key=allow_stale_key,
        wait=wait,
        create=lambda store, gw, options, notify: run_action(
            store, gw, action, intent, options=options, notify=notify, **kw
        ),
    )


def register(app: typer.Typer) -> None:
    @app.command("capture", help=CAPTURE_HELP)
    @guarded
    def capture(
        tctx: typer.Context,
        intent: IntentArg,
        amount: Annotated[
            str | None,
            typer.Option(
                "--amount",
                help="Amount to capture, in minor units (<= amount_capturable). Default: all.",
                show_default=False,
            ),
        ] = None,
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
        from stripectl import money

        ctx = make_ctx(tctx, db, json_out, debug)
        settings = gateway_settings(api_key, api_base, live, timeout, network_retries)
        result = _run(
            ctx, settings, "capture", intent,
            amount=None if amount is None else money.parse_amount(amount),
            allow_stale_key=allow_stale_key, wait=wait,
        )
        _render(ctx, result)

    @app.command("cancel", help=CANCEL_HELP)
    @guarded
    def cancel(
        tctx: typer.Context,
        intent: IntentArg,
        reason: Annotated[
            CancelReason | None,
            typer.Option("--reason", help="cancellation_reason sent to Stripe.", show_default=False),
        ] = None,
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
        settings = gateway_settings(api_key, api_base, live, timeout, network_retries)
        result = _run(
            ctx, settings, "cancel", intent, reason=reason.value if reason else None,
            allow_stale_key=allow_stale_key, wait=wait,
        )
        _render(ctx, result)

    @app.command("show", help=SHOW_HELP)
    @guarded
    def show(
        tctx: typer.Context,
        intent: IntentArg,
        db: DbOpt = None,
        json_out: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        from stripectl.errors import UsageError
        from stripectl.services.payment_actions import prepare_action, show_payment
        from stripectl.store import mirror_exists, open_store
        from stripectl.store.engine.postgres import redact_url

        ctx = make_ctx(tctx, db, json_out, debug)
        prepare_action("cancel", intent)  # the id's shape, before any file is touched
        if not mirror_exists(ctx.db, schema=ctx.schema):
            raise UsageError(f"no mirror at {redact_url(ctx.db)}", hint="pass --db or set STRIPECTL_DB")
        store = open_store(ctx.db, schema=ctx.schema)
        try:
            data = show_payment(store, intent)
        finally:
            store.close()
        if ctx.json:
            ctx.emit_json(data)
            return
        from stripectl.cli.payments_render import render_show

        render_show(ctx, data)


# The `payments` group as cli/app.py's lazy table loads it: `create` from
# cli/payments.py plus the commands above.
payments_app = _payments_group
register(payments_app)
