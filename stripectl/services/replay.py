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
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import islice, repeat

from stripectl.services.mirror_view import OverlayView
from stripectl.services.payment_report import payment_report
from stripectl.services.replay_chunk import claim_note, event_rows, lock_names, note_duplicate
from stripectl.services.replay_report import EventResult, EventSink, ReplayReport
from stripectl.services.subscription_report import subscription_report
from stripectl.store import Store
from stripectl.store import events as store_events
from stripectl.webhooks.apply import apply_event, sort_key
from stripectl.webhooks.delivery import Delivery
from stripectl.webhooks.inspect import Inspected, inspect
from stripectl.webhooks.refunds import TABLES as MONEY_TABLES
from stripectl.webhooks.refunds import touched_intents

# Each chunk is one transaction. Bigger ones amortise rewriting the index
# pages of `events` (delivery ids are random: a chunk dirties most of them)
# and the mirror: 5,000 took the bench's main-process cost per delivery from
# ~38 to ~28 us against 2,000; but the writer works through the last chunk
# alone, after the workers are done, and 3,000 came out ~2% faster end to
# end than 5,000 (4 alternated runs). The first chunks are smaller so the
# writer starts while the workers are still filling the pipeline.
CHUNK = 3000
RAMP = (500, 1000, 2000)


@dataclass
class ReplayOptions:
    secrets: list[str]
    tolerance: int = 300
    grace: str = "retry"
    dry_run: bool = False
    max_body_bytes: int = 1_048_576


def _chunk_sizes(size: int | None) -> Iterator[int]:
    """`size` for every chunk, or by default RAMP then CHUNK."""
    if size is not None:
        yield from repeat(size)
    yield from RAMP
    yield from repeat(CHUNK)


def _chunks(items: Iterable[Inspected], size: int | None) -> Iterator[list[Inspected]]:
    """Chunks of `size`, or by default of RAMP then CHUNK deliveries.

    Boundaries depend on input positions only, never on timing: deliveries
    are ordered within a chunk and applied chunk after chunk, so where a
    chunk ends can decide between `applied` and `stale` (and an anomaly's
    exit code) for out-of-order input; the same input must always give the
    same report. (The final mirror of a complete history does not depend on
    the boundaries at all: tests/test_replay_property.py.)"""
    it = iter(items)
    for limit in _chunk_sizes(size):
        chunk = list(islice(it, limit))
        if not chunk:
            return
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
    chunk_size: int | None = None,
    event_sink: EventSink | None = None,
) -> ReplayReport:
    """Verify, dedupe, order, apply and store `deliveries` (see module doc)."""
    return replay_inspected(
        store,
        inspect_all(deliveries, options),
        options,
        progress=progress,
        now=now,
        chunk_size=chunk_size,
        event_sink=event_sink,
    )


def replay_inspected(
    store: Store,
    inspected_stream: Iterable[Inspected],
    options: ReplayOptions,
    *,
    progress: Callable[[int], None] | None = None,
    now: int | None = None,
    chunk_size: int | None = None,
    event_sink: EventSink | None = None,
    background_checkpoints: bool = False,
    report_subscriptions: bool = True,
) -> ReplayReport:
    """`replay` for deliveries already inspected (e.g. by services/parallel.py).

    `event_sink`, if given, receives each chunk's results once it is
    committed instead of the report keeping them all: a 100k-delivery
    report then costs no memory (the CLI spools them to a file).
    `background_checkpoints` is for one long replay (Store.background_checkpoints),
    not for the listener's small batches; the listener also skips the access
    report (`report_subscriptions=False`: ~0.4 ms a batch nobody reads)."""
    with _gc_paused():
        return _replay_inspected(
            store,
            inspected_stream,
            options,
            progress,
            now,
            chunk_size,
            event_sink,
            background_checkpoints,
            report_subscriptions,
        )


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
    chunk_size: int | None,
    event_sink: EventSink | None,
    background_checkpoints: bool,
    report_subscriptions: bool = True,
) -> ReplayReport:
    report = ReplayReport(run_id=uuid.uuid4().hex[:12], dry_run=options.dry_run)
    run = _Run(store)
    with store.background_checkpoints() if background_checkpoints else nullcontext():
        for inspected in _chunks(inspected_stream, chunk_size):
            clock = now if now is not None else int(time.time())
            if options.dry_run:
                results = run.process_chunk(inspected, clock)
            else:
                # Dedupe lookups, the apply and the writes share one write lock: a
                # listener on the same mirror cannot store an event in between.
                # Where the store can lock names, the chunk names what it
                # decides on, and receivers on other objects go side by side.
                mode: str | None = None
                names = None
                if store.concurrent_writers:
                    mode = store.meta_get("livemode")  # once set, never changed
                    names = lock_names(inspected, mode_known=mode is not None)
                with store.transaction(names):
                    run.check_store()
                    if mode is not None:
                        run.view.know_livemode(mode == "1")
                    results = run.process_chunk(inspected, clock)
                    rows = event_rows(inspected, results, report.run_id, clock)
                    bulk = len(rows) >= store_events.BULK_ROWS
                    if bulk:  # a bulk load cannot ride the batch (COPY on PostgreSQL)
                        store_events.insert_events(store, rows)
                    with store.write_batch():  # the writes need no answers: one round trip
                        if not bulk:
                            store_events.insert_events(store, rows)
                        run.view.flush()
                        if run.view.livemode_changed is not None:
                            store.meta_set("livemode", run.view.livemode_changed)
            run.view.livemode_changed = None
            report.add(results, event_sink)
            if progress is not None:
                progress(len(inspected))
    if report_subscriptions:
        report.subscriptions = subscription_report(
            run.view, sorted(run.touched), grace=options.grace, now=now
        )
        report.payments = payment_report(run.view, sorted(run.touched_payments))
    return report


class _Run:
    """What one replay remembers across its chunks.

    `sole_writer` is true while every `events` row in the mirror was written
    by this run: the mirror had none when the run began and no other
    connection has committed since (`PRAGMA data_version`). The dedupe
    lookups are then answered from memory, exactly as the table would answer
    them, and mirror rows read or written earlier stay valid. A first import
    into a new mirror is the large case this serves; any other writer (a
    listener, a sync) turns it off for the rest of the run.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.view = OverlayView(store)
        self.seen_deliveries: set[str] = set()  # stored in `events` by this run
        self.seen_events: set[str] = set()
        self.touched: set[str] = set()
        self.touched_payments: set[str] = set()  # payment intents of money events
        self.sole_writer: bool | None = None  # None: not known yet
        self.data_version: int | None = None

    def check_store(self) -> None:
        """Call inside the chunk's write transaction."""
        version = self.store.data_version()
        if self.sole_writer is None:
            self.sole_writer = not store_events.any_events(self.store)
        elif version != self.data_version:
            self.sole_writer = False
        if version != self.data_version:
            self.view.forget()
        self.data_version = version
        self.view.keep_cache = bool(self.sole_writer)

    def process_chunk(self, inspected: list[Inspected], now: int) -> list[EventResult]:
        store, view = self.store, self.view
        seen_deliveries, seen_events, touched = self.seen_deliveries, self.seen_events, self.touched
        if self.sole_writer:
            # `events` holds only what this run stored: rows are looked up
            # only for deliveries seen in earlier chunks (re-deliveries, few),
            # and every accepted event id is in seen_events already.
            stored_deliveries = store_events.known_deliveries(
                store, [i.delivery_id for i in inspected if i.delivery_id in seen_deliveries]
            )
            accepted_ids: set[str] = set()
        else:
            stored_deliveries = store_events.known_deliveries(store, [i.delivery_id for i in inspected])
            accepted_ids = store_events.accepted_event_ids(
                store, [i.event_id for i in inspected if i.event_id and not i.rejected]
            )
        results: list[EventResult] = []
        candidates: list[tuple[EventResult, Inspected]] = []
        first_in_chunk: dict[str, EventResult] = {}
        repeats: list[tuple[EventResult, Inspected, EventResult]] = []
        for ins in inspected:
            res = EventResult(
                ins.source,
                ins.event_id,
                # A handful of distinct types: one string each, not one per
                # delivery kept in the report (~8 MB at 100k deliveries).
                ins.type and sys.intern(ins.type),
                "rejected",
                ins.reason,
                ins.delivery_id,
                ins.created,
                ins.verified,
                ins.note or (ins.detail if ins.reason is not None else None),
            )
            if ins.claimed_id is not None:
                res.claimed_event_id = ins.claimed_id
                res.note = claim_note(ins.claimed_id, res.note)
            results.append(res)
            if ins.touched_sub:
                touched.add(ins.touched_sub)
            if ins.table in MONEY_TABLES and ins.reason is None:
                self.touched_payments |= touched_intents(view, ins)
            prior = stored_deliveries.get(ins.delivery_id)
            if ins.reason is not None and (
                ins.delivery_id in seen_deliveries or (prior is not None and prior[0] == "rejected")
            ):
                # Rejected again: still a finding (a CI gate must not pass over a
                # forged delivery on its second run), but its bytes are stored.
                res.stored_before = True
                res.rejected_before = prior[1] if prior is not None else ins.reason
                res.note = claim_note(ins.claimed_id, "already stored: this delivery was rejected before")
                continue
            if ins.delivery_id in seen_deliveries or (
                # A delivery rejected earlier that passes now (the operator may now
                # pass the right secret) is checked again below, not a duplicate.
                prior is not None and prior[0] != "rejected"
            ):
                res.outcome, res.reason = "duplicate", "delivery already stored"
                first = first_in_chunk.get(ins.delivery_id)
                if first is not None:
                    # Its first copy is in this chunk: annotated once that copy's
                    # outcome is known, as if it had been stored already, so the
                    # report does not depend on where chunks end.
                    repeats.append((res, ins, first))
                else:
                    note_duplicate(res, ins, prior)
                continue
            if prior is not None:
                res.note = f"re-checked: stored earlier as rejected: {prior[1]}"
            seen_deliveries.add(ins.delivery_id)
            first_in_chunk[ins.delivery_id] = res
            if ins.reason is not None:
                continue
            candidates.append((res, ins))

        candidates.sort(key=_candidate_key)
        by_table: dict[str, list[str]] = {}
        for _, ins in candidates:
            if ins.table is not None and ins.object_id:
                by_table.setdefault(ins.table, []).append(ins.object_id)
        for table, ids in by_table.items():
            view.prefetch(table, ids)
        mode = view.livemode()
        for res, ins in candidates:
            event_id = ins.event_id
            assert event_id is not None
            if event_id in seen_events or event_id in accepted_ids:
                res.outcome, res.reason = "duplicate", "event id already seen"
                continue
            if mode is not None and bool(ins.livemode) != mode:
                if mode:
                    # Legitimate on a live Connect endpoint (accounts connected in
                    # both modes): stored, reported, never applied, no failure.
                    seen_events.add(event_id)
                    # (A thin event keeps its own reason: it is never applied anyway.)
                    res.outcome = "ignored"
                    res.reason = "thin_event" if ins.ignore == "thin_event" else "test_mode_event"
                    res.note = "test-mode event on a live-mode mirror: not applied"
                else:
                    res.outcome, res.reason = "rejected", "livemode_mismatch"
                    res.note = "live-mode event on a test-mode mirror: Stripe never sends one"
                continue
            seen_events.add(event_id)
            source = "api" if ins.trusted else "unverified" if ins.unsigned else "webhook"
            res.outcome, res.reason = apply_event(view, ins, now=now, source=source)
            if mode is None and res.outcome == "applied":
                # The first applied event sets the mirror's mode (README "The mirror").
                mode = bool(ins.livemode)
                view.set_livemode(mode)
        for res, ins, first in repeats:
            note_duplicate(res, ins, (first.outcome, first.reason))
        for _, ins in candidates:  # again: a refund's charge may be known only now
            if ins.table in MONEY_TABLES:
                self.touched_payments |= touched_intents(view, ins)
        return results


def _candidate_key(pair: tuple[EventResult, Inspected]) -> tuple[int, int, str]:
    return sort_key(pair[1])
