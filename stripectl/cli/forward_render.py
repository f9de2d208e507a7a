"""Human table for replay-webhook --forward-to."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from stripectl.cli.common import Ctx
from stripectl.redact import redact


def render_forward(ctx: Ctx, report: dict[str, Any]) -> None:
    results = report.get("results", [])
    table = Table(title="Forwarded", title_justify="left")
    for col in ("source", "event", "type", "status", "ms", "error"):
        table.add_column(col, overflow="fold")
    for r in results:
        status = r.get("status")
        ok = isinstance(status, int) and 200 <= status < 300
        table.add_row(
            str(r.get("source") or ""),
            str(r.get("event_id") or "-"),
            str(r.get("type") or "-"),
            f"[green]{status}[/]" if ok else f"[red]{status if status is not None else 'error'}[/]",
            f"{r.get('latency_ms', 0):.0f}" if r.get("latency_ms") is not None else "",
            redact(str(r.get("error") or "")),
        )
    ctx.out.print(table)
    bad = sum(1 for r in results if not (isinstance(r.get("status"), int) and 200 <= r["status"] < 300))
    ctx.out.print(f"{len(results)} forwarded, {bad} not 2xx", highlight=False)
