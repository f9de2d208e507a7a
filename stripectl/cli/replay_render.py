"""Human tables for replay-webhook and forwarding (rich)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from stripectl.cli.common import Ctx
from stripectl.printable import printable
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
PROBLEMS = ("rejected", "anomaly", "stale")


class TableEvents:
    """An event sink (services/replay.EventSink) keeping only what the table
    lists: with --events auto, everything up to _AUTO_LIMIT deliveries, past
    that the problems only, so a huge replay does not hold every result."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.total = 0
        self.kept: list[Any] = []

    def __call__(self, results: list[Any]) -> None:
        self.total += len(results)
        if self.mode == "none":
            return
        if self.mode == "all" or (self.mode == "auto" and self.total <= _AUTO_LIMIT):
            self.kept.extend(results)
            return
        if self.mode == "auto" and len(self.kept) and self.total - len(results) <= _AUTO_LIMIT:
            self.kept = [e for e in self.kept if e.outcome in PROBLEMS]
        self.kept.extend(e for e in results if e.outcome in PROBLEMS)


def _event_cell(e: dict[str, Any]) -> str:
    """The event id; for a rejected delivery, the one its body claims, marked."""
    if e["event_id"]:
        return str(e["event_id"])
    if e.get("claimed_event_id"):
        return f"{e['claimed_event_id']} (claimed, unverified)"
    return "-"


def _without_claim(note: str, claimed: str) -> str:
    claim = f"claims event {claimed} (unverified)"
    return note.replace(f"; {claim}", "").replace(claim, "")


def _when(ts: Any) -> str:
    if not isinstance(ts, int):
        return ""
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):  # a stored but absurd time
        return str(ts)


def subscription_problem(s: dict[str, Any]) -> bool:
    """A subscription worth a look: no access, in dunning, or unverified."""
    return not s.get("access") or bool(s.get("dunning")) or not s.get("verified", True)


def shown_subscriptions(subs: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """The rows the table lists. `auto`, as --events auto: every one up to
    _AUTO_LIMIT, past that the problems only, and at most _AUTO_LIMIT of
    them: a rich table of 20,000 rows took 3x the replay's time and ~240 MB
    (the README promises < 200 MB); --json has them all."""
    if mode == "none":
        return []
    if mode == "all" or (mode == "auto" and len(subs) <= _AUTO_LIMIT):
        return subs
    problems = [s for s in subs if subscription_problem(s)]
    return problems if mode == "problems" else problems[:_AUTO_LIMIT]


def render_replay(
    ctx: Ctx, report: dict[str, Any], events_mode: str, subscriptions_mode: str = "auto"
) -> None:
    """`report["events"]` may hold only the events to list (see TableEvents)."""
    summary = report["summary"]
    events = report["events"]
    if events_mode == "auto":
        events_mode = "all" if summary["total"] <= _AUTO_LIMIT else "problems"
    shown = [
        e
        for e in events
        if events_mode == "all" or (events_mode == "problems" and e["outcome"] in PROBLEMS)
    ]
    if shown:
        table = Table(title="Deliveries", title_justify="left")
        for col in ("source", "event", "type", "outcome", "reason"):
            table.add_column(col, overflow="fold")
        for e in shown:
            reason = e["reason"] or ""
            note = e.get("note")
            if note and e.get("claimed_event_id"):
                # The event column shows the claimed id already.
                note = _without_claim(note, e["claimed_event_id"])
            if note:
                reason = f"{reason} ({note})" if reason else note
            if not e["verified"] and e["outcome"] != "rejected":
                reason = f"UNVERIFIED {reason}".strip()
            # Text, never str: sources, ids and notes come from the input and
            # must not be read as rich markup ("[/x]" in an event id raised).
            table.add_row(
                plain_cell(e["source"]),
                plain_cell(_event_cell(e)),
                plain_cell(e["type"] or "-"),
                Text(e["outcome"], style=_STYLE.get(e["outcome"], "")),
                plain_cell(reason),
            )
        ctx.out.print(table)
        if len(shown) < summary["total"]:
            ctx.note(f"{summary['total'] - len(shown)} more deliveries not listed (--events all)")

    all_subs = report["subscriptions"]
    subs = shown_subscriptions(all_subs, subscriptions_mode)
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
            access = Text("yes", style="green") if s["access"] else Text("no", style="red")
            if not s.get("verified", True):
                access.append(" (UNVERIFIED)")
            table.add_row(
                plain_cell(s["id"]),
                plain_cell(s.get("customer") or ""),
                plain_cell(s.get("user_id") or ""),
                plain_cell(s.get("status") or ""),
                access,
                plain_cell(s.get("access_reason") or ""),
                plain_cell(dunning),
                _when(s.get("current_period_end")),
            )
        ctx.out.print(table)
    if len(subs) < len(all_subs) and subscriptions_mode != "none":
        problems = sum(1 for s in all_subs if subscription_problem(s))
        ctx.note(
            f"{len(all_subs) - len(subs)} of {len(all_subs)} subscriptions not listed "
            f"({problems} without access, in dunning or unverified); "
            "--subscriptions all or --json lists every one"
        )

    parts = [f"{k} {summary[k]}" for k in summary if k != "total" and summary[k]]
    prefix = "dry run, nothing written: " if report.get("dry_run") else ""
    ctx.out.print(f"{prefix}{summary['total']} deliveries: " + (", ".join(parts) or "none"), highlight=False)


def plain_cell(value: object) -> Text:
    """A cell of input data: redacted, never read as rich markup, and with
    no control characters for the terminal to act on."""
    return Text(printable(redact(str(value))))
