"""Human table for replay-webhook --forward-to."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from stripectl.cli.common import Ctx
from stripectl.cli.replay_render import plain_cell


def render_forward(ctx: Ctx, report: dict[str, Any]) -> None:
    results = report.get("results", [])
    table = Table(title="Forwarded", title_justify="left")
    for col in ("source", "event", "type", "status", "ms", "error"):
        table.add_column(col, overflow="fold")
    for r in results:
        status = r.get("status")
        ok = isinstance(status, int) and 200 <= status < 300
        # Text, never str: what the input and the handler said is not markup.
        table.add_row(
            plain_cell(r.get("source") or ""),
            plain_cell(r.get("event_id") or "-"),
            plain_cell(r.get("type") or "-"),
            Text(str(status if status is not None else "error"), style="green" if ok else "red"),
            f"{r.get('latency_ms', 0):.0f}" if r.get("latency_ms") is not None else "",
            plain_cell(r.get("error") or ""),
        )
    ctx.out.print(table)
    bad = sum(1 for r in results if not (isinstance(r.get("status"), int) and 200 <= r["status"] < 300))
    ctx.out.print(f"{len(results)} forwarded, {bad} not 2xx", highlight=False)
