"""`stripectl cards`: Stripe's test cards and PaymentMethod tokens, offline.

Reference data only: no network, no mirror. The outcomes are Stripe's
documented test-mode behaviour (docs.stripe.com/testing).
"""

from __future__ import annotations

from typing import Any

import typer

from stripectl.cli.common import EXIT_CODES_HELP, DbOpt, DebugOpt, JsonOpt, guarded, make_ctx

TEST_CARDS: list[dict[str, Any]] = [
    {
        "value": "4242424242424242",
        "kind": "card number",
        "outcome": "succeeds",
        "status": "succeeded",
        "decline_code": None,
    },
    {
        "value": "4000000000000002",
        "kind": "card number",
        "outcome": "declined",
        "status": "requires_payment_method",
        "decline_code": "generic_decline",
    },
    {
        "value": "4000002500003155",
        "kind": "card number",
        "outcome": "requires 3-D Secure authentication",
        "status": "requires_action",
        "decline_code": None,
    },
    {
        "value": "4000000000009995",
        "kind": "card number",
        "outcome": "declined: insufficient funds",
        "status": "requires_payment_method",
        "decline_code": "insufficient_funds",
    },
    {
        "value": "pm_card_visa",
        "kind": "payment method",
        "outcome": "succeeds",
        "status": "succeeded",
        "decline_code": None,
    },
    {
        "value": "pm_card_visa_chargeDeclined",
        "kind": "payment method",
        "outcome": "declined",
        "status": "requires_payment_method",
        "decline_code": "generic_decline",
    },
    {
        "value": "pm_card_visa_chargeDeclinedInsufficientFunds",
        "kind": "payment method",
        "outcome": "declined: insufficient funds",
        "status": "requires_payment_method",
        "decline_code": "insufficient_funds",
    },
    {
        "value": "pm_card_authenticationRequired",
        "kind": "payment method",
        "outcome": "requires 3-D Secure authentication",
        "status": "requires_action",
        "decline_code": None,
    },
    {
        "value": "pm_card_chargeCustomerFail",
        "kind": "payment method",
        "outcome": "attaches to a customer, then the charge is declined (card 4000000000000341)",
        "status": "requires_payment_method",
        "decline_code": "generic_decline",
    },
]

CARDS_HELP = f"""List Stripe's test cards and pm_card_* tokens with their expected outcome.

Use a token with payments create in test mode; card numbers are for Checkout
and Elements forms (any future expiry, any CVC). Offline: no key, no network.

Examples:

  stripectl cards

  stripectl cards --json

{EXIT_CODES_HELP}
"""


@guarded
def cards(
    tctx: typer.Context,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    if ctx.json:
        ctx.emit_json(TEST_CARDS)
        return
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for col in ("test value", "kind", "expected outcome", "status", "decline code"):
        table.add_column(col, overflow="fold", no_wrap=col == "test value")
    for card in TEST_CARDS:
        table.add_row(
            card["value"], card["kind"], card["outcome"], card["status"], card["decline_code"] or ""
        )
    ctx.out.print(table)


def register(app: typer.Typer) -> None:
    app.command("cards", help=CARDS_HELP)(cards)
