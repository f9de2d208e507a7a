"""Replay saved deliveries into the mirror: verify, dedupe, order, apply, store.

Input is streamed in chunks. Each chunk is verified, sorted by the ordering
rule (webhooks/apply.py), applied against the mirror, and committed in ONE
transaction together with every delivery's row in `events`: a kill leaves
whole chunks or nothing, and a re-run skips what was committed (duplicates).
Across chunks the newest-wins comparison keeps the final mirror independent
of delivery order.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from stripectl.services.mirror_view import OverlayView
from stripectl.services.subscription_report import subscription_report
from stripectl.store import Store
from stripectl.store import events as store_events
from stripectl.store.events import EventRow
from stripectl.webhooks.apply import apply_event, sort_key
from stripectl.webhooks.delivery import Delivery
from stripectl.webhooks.inspect import Inspected, inspect

OUTCOMES = ("applied", "duplicate", "stale", "anomaly", "ignored", "rejected")
CHUNK = 2000


@dataclass
class ReplayOptions:
    secrets: list[str]
    tolerance: int = 300
    grace: str = "retry"
    dry_run: bool = False
    max_body_bytes: int = 1_048_576


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
        }


@dataclass
class ReplayReport:
    run_id: str
    dry_run: bool
    events: list[EventResult] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(e.outcome for e in self.events)
        return {o: counts.get(o, 0) for o in OUTCOMES} | {"total": len(self.events)}

    @property
    def ok(self) -> bool:
        return not any(e.outcome in ("rejected", "anomaly") for e in self.events)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, Iterator) else v for k, v in self.json_parts()}

    def json_parts(self) -> Iterator[tuple[str, Any]]:
        """The --json report key by key; events lazily (see Ctx.emit_json_stream)."""
        yield "summary", self.summary
        yield "dry_run", self.dry_run
        yield "events", (e.to_json() for e in self.events)
        yield "subscriptions", self.subscriptions


def _chunks(items: Iterable[Inspected], size: int) -> Iterator[list[Inspected]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def inspect_all(deliveries: Iterable[Delivery], options: ReplayOptions) -> Iterator[Inspected]:
    for d in deliveries:
        yield inspect(
            d,
            secrets=options.secrets,
            tolerance=options.tolerance,
            max_body_bytes=options.max_body_bytes,
        )


def replay(
    store: Store,
    deliveries: Iterable[Delivery],
    options: ReplayOptions,
    *,
    progress: Callable[[int], None] | None = None,
    now: int | None = None,
    chunk_size: int = CHUNK,
) -> ReplayReport:
    """Verify, dedupe, order, apply and store `deliveries` (see module doc)."""
    return replay_inspected(
        store,
        inspect_all(deliveries, options),
        options,
        progress=progress,
        now=now,
        chunk_size=chunk_size,
    )


def replay_inspected(
    store: Store,
    inspected_stream: Iterable[Inspected],
    options: ReplayOptions,
    *,
    progress: Callable[[int], None] | None = None,
    now: int | None = None,
    chunk_size: int = CHUNK,
) -> ReplayReport:
    """`replay` for deliveries already inspected (e.g. by services/parallel.py)."""
    with _gc_paused():
        return _replay_inspected(store, inspected_stream, options, progress, now, chunk_size)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Replay allocates millions of short-lived, acyclic objects (parsed
    events, rows, results); reference counting frees them all. The cyclic GC
    only kept re-walking the growing result list: ~1/3 of the run's CPU."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _replay_inspected(
    store: Store,
    inspected_stream: Iterable[Inspected],
    options: ReplayOptions,
    progress: Callable[[int], None] | None,
    now: int | None,
    chunk_size: int,
) -> ReplayReport:
    report = ReplayReport(run_id=uuid.uuid4().hex[:12], dry_run=options.dry_run)
    view = OverlayView(store)
    seen_deliveries: set[str] = set()
    seen_events: set[str] = set()
    touched: set[str] = set()
    for inspected in _chunks(inspected_stream, chunk_size):
        clock = now if now is not None else int(time.time())
        results = _process_chunk(
            store, view, inspected, seen_deliveries, seen_events, touched, clock
        )
        rows = [
            _event_row(ins, res, report.run_id, clock)
            for ins, res in zip(inspected, results, strict=True)
        ]
        if not options.dry_run:
            with store.transaction():
                store_events.insert_events(store, [r for r in rows if r is not None])
                view.flush()
                if view.livemode_changed is not None:
                    store.meta_set("livemode", view.livemode_changed)
        view.livemode_changed = None
        report.events.extend(results)
        if progress is not None:
            progress(len(inspected))
    report.subscriptions = subscription_report(view, sorted(touched), grace=options.grace, now=now)
    return report


def _process_chunk(
    store: Store,
    view: OverlayView,
    inspected: list[Inspected],
    seen_deliveries: set[str],
    seen_events: set[str],
    touched: set[str],
    now: int,
) -> list[EventResult]:
    stored_deliveries = store_events.known_deliveries(store, [i.delivery_id for i in inspected])
    accepted_ids = store_events.accepted_event_ids(
        store, [i.event_id for i in inspected if i.event_id and not i.rejected]
    )
    results: dict[int, EventResult] = {}
    candidates: list[tuple[int, Inspected]] = []
    for n, ins in enumerate(inspected):
        res = EventResult(
            source=ins.source,
            event_id=ins.event_id,
            type=ins.type,
            outcome="rejected",
            reason=ins.reason,
            delivery_id=ins.delivery_id,
            created=ins.created,
            verified=ins.verified,
            note=ins.note or (ins.detail if ins.rejected else None),
        )
        results[n] = res
        if ins.touched_sub:
            touched.add(ins.touched_sub)
        prior = stored_deliveries.get(ins.delivery_id)
        if ins.delivery_id in seen_deliveries or (
            # A delivery rejected earlier is checked again (the operator may now
            # pass the right secret); rejected again for the same reason, it
            # is a plain duplicate and nothing changes.
            prior is not None and (prior[0] != "rejected" or prior[1] == ins.reason)
        ):
            res.outcome, res.reason = "duplicate", "delivery already stored"
            if prior is not None and prior[0] != "duplicate":
                res.note = f"stored earlier as {prior[0]}" + (f": {prior[1]}" if prior[1] else "")
                if prior[0] == "rejected":
                    res.rejected_before = prior[1] or "rejected"
            elif ins.rejected:  # the same bytes twice in this run, rejected the first time
                res.rejected_before = ins.reason
            continue
        if prior is not None:
            res.note = f"re-checked: stored earlier as rejected: {prior[1]}"
        seen_deliveries.add(ins.delivery_id)
        if ins.rejected:
            continue
        candidates.append((n, ins))

    candidates.sort(key=lambda pair: sort_key(pair[1]))
    by_table: dict[str, list[str]] = {}
    for _, ins in candidates:
        if ins.table is not None and ins.object_id:
            by_table.setdefault(ins.table, []).append(ins.object_id)
    for table, ids in by_table.items():
        view.prefetch(table, ids)
    mode = view.livemode()
    for n, ins in candidates:
        res = results[n]
        assert ins.event_id is not None
        if ins.event_id in accepted_ids or ins.event_id in seen_events:
            res.outcome, res.reason = "duplicate", "event id already seen"
            continue
        if mode is None:
            mode = bool(ins.livemode)
            view.set_livemode(mode)
        elif bool(ins.livemode) != mode:
            res.outcome, res.reason = "rejected", "livemode_mismatch"
            res.note = f"event livemode={ins.livemode}, mirror is {'live' if mode else 'test'}"
            continue
        seen_events.add(ins.event_id)
        source = "api" if ins.trusted else "unverified" if ins.unsigned else "webhook"
        res.outcome, res.reason = apply_event(view, ins, now=now, source=source)
    return [results[n] for n in range(len(inspected))]


def _event_row(ins: Inspected, res: EventResult, run_id: str, now: int) -> EventRow | None:
    if res.outcome == "duplicate" and res.reason == "delivery already stored":
        return None  # the identical bytes are already in `events`
    # Positional: the keyword form of a NamedTuple costs ~3x more per row.
    return EventRow(
        ins.delivery_id,
        ins.event_id,
        ins.type,
        ins.created,
        None if ins.livemode is None else int(ins.livemode),
        ins.object_id,
        ins.api_version,
        ins.source,
        ins.received_at,
        ins.headers,
        ins.body,
        int(ins.verified),
        res.outcome,
        res.reason,
        res.note,
        run_id,
        now,
    )
