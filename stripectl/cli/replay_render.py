"""Human tables for replay-webhook and forwarding (rich)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from stripectl.cli.common import Ctx
from stripectl.redact import redact

_STYLE = {
    "applied": "green",
    "duplicate": "dim",
    "stale": "yellow",
    "ignored": "dim",
    "anomaly": "bold red",
    "rejected": "bold red",
}
_AUTO_LIMIT = 100


def _when(ts: Any) -> str:
    if not isinstance(ts, int):
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def render_replay(ctx: Ctx, report: dict[str, Any], events_mode: str) -> None:
    summary = report["summary"]
    events = report["events"]
    if events_mode == "auto":
        events_mode = "all" if len(events) <= _AUTO_LIMIT else "problems"
    shown = [
        e
        for e in events
        if events_mode == "all"
        or (events_mode == "problems" and e["outcome"] in ("rejected", "anomaly", "stale"))
    ]
    if shown:
        table = Table(title="Deliveries", title_justify="left")
        for col in ("source", "event", "type", "outcome", "reason"):
            table.add_column(col, overflow="fold")
        for e in shown:
            reason = e["reason"] or ""
            if e.get("note"):
                reason = f"{reason} ({e['note']})" if reason else e["note"]
            if not e["verified"] and e["outcome"] != "rejected":
                reason = f"UNVERIFIED {reason}".strip()
            style = _STYLE.get(e["outcome"], "")
            table.add_row(
                e["source"],
                e["event_id"] or "-",
                e["type"] or "-",
                f"[{style}]{e['outcome']}[/]" if style else e["outcome"],
                redact(reason),
            )
        ctx.out.print(table)
        if len(shown) < len(events):
            ctx.note(f"{len(events) - len(shown)} more deliveries not listed (--events all)")

    subs = report["subscriptions"]
    if subs:
        table = Table(title="Subscriptions", title_justify="left")
        for col in (
            "subscription",
            "customer",
            "user",
            "status",
            "access",
            "why",
            "dunning",
            "period end",
        ):
            table.add_column(col, overflow="fold")
        for s in subs:
            d = s.get("dunning")
            dunning = ""
            if d:
                dunning = f"attempt {d['attempt_count']}"
                if d.get("next_payment_attempt"):
                    dunning += f", retry {_when(d['next_payment_attempt'])}"
                if d.get("action_required"):
                    dunning += ", needs 3-D Secure"
            access = "[green]yes[/]" if s["access"] else "[red]no[/]"
            table.add_row(
                s["id"],
                s.get("customer") or "",
                s.get("user_id") or "",
                s.get("status") or "",
                access + ("" if s.get("verified", True) else " (UNVERIFIED)"),
                s.get("access_reason") or "",
                dunning,
                _when(s.get("current_period_end")),
            )
        ctx.out.print(table)

    parts = [f"{k} {summary[k]}" for k in summary if k != "total" and summary[k]]
    prefix = "dry run, nothing written: " if report.get("dry_run") else ""
    ctx.out.print(f"{prefix}{summary['total']} deliveries: " + (", ".join(parts) or "none"), highlight=False)
