"""Payments for people: `payments show` and the replay report's Payments table."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from stripectl import money
from stripectl.cli.common import Ctx
from stripectl.cli.payments import print_fields
from stripectl.printable import printable
from stripectl.redact import redact


def _amount(value: Any, currency: str | None) -> str:
    if value is None:
        return "-"
    return money.format_amount(int(value), currency) if currency else str(value)


def _cell(value: object) -> Text:
    return Text(printable(redact(str(value))))


def render_payments(ctx: Ctx, payments: list[dict[str, Any]]) -> None:
    """One row per payment intent the replay's money events touched."""
    if not payments:
        return
    table = Table(title="Payments", title_justify="left")
    for col in ("payment intent", "status", "captured", "refunded", "refunds"):
        table.add_column(col, overflow="fold")
    for p in payments:
        cur = p.get("currency")
        refunds = ", ".join(
            f"{r['id']} {r['status']} {_amount(r['amount'], cur)}"
            + (f" ({r['failure_reason']})" if r.get("failure_reason") else "")
            for r in p["refunds"]
        )
        table.add_row(
            _cell(p["id"]),
            _cell(p.get("status") or "-"),
            _cell(_amount(p["amount_captured"], cur)),
            _cell(f"{_amount(p['amount_refunded'], cur)} ({p['refund_state']})"),
            _cell(refunds),
        )
    ctx.out.print(table)


def render_show(ctx: Ctx, data: dict[str, Any]) -> None:
    cur = str(data["currency"] or "")

    def amt(value: Any) -> str:
        return "-" if value is None else money.format_amount(int(value), cur) if cur else str(value)

    print_fields(
        ctx,
        [
            ("payment intent", data["payment_intent"]),
            ("status", str(data["status"] or "unknown")),
            ("amount", amt(data["amount"])),
            ("captured", amt(data["amount_captured"])),
            ("refunded", f"{amt(data['amount_refunded'])} ({data['refund_state']})"),
        ],
    )
    if data["refunds"]:
        table = Table(title="refunds", title_justify="left")
        for col in ("refund", "status", "amount", "reason", "refund ref", "from"):
            table.add_column(col)
        for r in data["refunds"]:
            status = r["status"] or ""
            if r["failure_reason"]:
                status += f" ({r['failure_reason']})"
            table.add_row(*(Text(printable(str(v))) for v in (
                r["id"], status, amt(r["amount"]), r["reason"] or "", r["refund_ref"] or "",
                r["last_event_type"] or r["source"] or "",
            )))
        ctx.out.print(table)
    for row in data["ledger"]:
        line = f"ledger: {row['operation']} {row['state']} {row['object_id'] or ''} [{row['key']}]"
        ctx.out.print(Text(printable(line)))
