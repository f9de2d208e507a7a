"""What a replay reports: one result per delivery, counts, the JSON document."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from stripectl.json_text import JSONArraySpool, boolean, int_or_null, string_or_null

OUTCOMES = ("applied", "duplicate", "stale", "anomaly", "ignored", "rejected")


@dataclass(slots=True)
class EventResult:
    source: str
    event_id: str | None
    type: str | None
    outcome: str
    reason: str | None
    delivery_id: str
    created: int | None = None
    verified: bool = False
    note: str | None = None
    # For a duplicate of a delivery stored as rejected: that rejection's reason
    # (the listener answers such a resend with the same 400, not a 200).
    rejected_before: str | None = None
    # A rejected delivery's event id as its unverified body claims it.
    claimed_event_id: str | None = None
    # The delivery's bytes are in `events` already (a rejected one seen again).
    stored_before: bool = False

    def to_json_text(self) -> str:
        """`json.dumps(self.to_json())`, ~4x faster (see stripectl/json_text.py)."""
        return (
            f'{{"source": {string_or_null(self.source)}, '
            f'"event_id": {string_or_null(self.event_id)}, "type": {string_or_null(self.type)}, '
            f'"outcome": {string_or_null(self.outcome)}, "reason": {string_or_null(self.reason)}, '
            f'"verified": {boolean(self.verified)}, "created": {int_or_null(self.created)}, '
            f'"note": {string_or_null(self.note)}, '
            f'"claimed_event_id": {string_or_null(self.claimed_event_id)}}}'
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "event_id": self.event_id,
            "type": self.type,
            "outcome": self.outcome,
            "reason": self.reason,
            "verified": self.verified,
            "created": self.created,
            "note": self.note,
            "claimed_event_id": self.claimed_event_id,
        }


EventSink = Callable[[list[EventResult]], None]


@dataclass
class ReplayReport:
    run_id: str
    dry_run: bool
    # Every delivery's result, unless the caller took them chunk by chunk
    # with an event sink (then only the counts are kept here).
    events: list[EventResult] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, results: list[EventResult], sink: EventSink | None) -> None:
        self.counts.update(r.outcome for r in results)
        if sink is None:
            self.events.extend(results)
        else:
            sink(results)

    @property
    def summary(self) -> dict[str, int]:
        return {o: self.counts.get(o, 0) for o in OUTCOMES} | {"total": self.counts.total()}

    @property
    def ok(self) -> bool:
        return not (self.counts["rejected"] or self.counts["anomaly"])

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "dry_run": self.dry_run,
            "events": [e.to_json() for e in self.events],
            "subscriptions": self.subscriptions,
        }

    def json_parts(self, events: JSONArraySpool) -> Iterator[tuple[str, Any]]:
        """The --json report key by key (see Ctx.emit_json_stream), the events
        from the spool an event sink filled: the same document as to_json()."""
        yield "summary", self.summary
        yield "dry_run", self.dry_run
        yield "events", events
        yield "subscriptions", self.subscriptions
