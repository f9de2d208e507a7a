"""What one replay chunk locks, says of its duplicates, and writes to `events`
(helpers of services/replay._Run, kept apart from its decisions).
"""

from __future__ import annotations

from typing import Any

from stripectl.services.replay_report import EventResult
from stripectl.webhooks.inspect import Inspected


def lock_names(inspected: list[Inspected], *, mode_known: bool) -> list[str]:
    """Everything a chunk reads to decide and then writes, by name: each
    delivery id (dedupe of the bytes), event id (dedupe of the event), the
    object each event applies to, and the subscription a Checkout Session
    names (its completion links the user; a subscription reads that link).
    The mirror's mode, while it has none (the first event sets it; never
    changed after)."""
    names: list[str] = []
    add = names.append
    for ins in inspected:
        add(f"d:{ins.delivery_id}")
        if ins.reason is not None:
            continue  # rejected: only its `events` row is written
        if ins.event_id:
            add(f"e:{ins.event_id}")
        if ins.table is not None and ins.object_id:
            add(f"o:{ins.table}:{ins.object_id}")
            if ins.table == "checkout_sessions" and ins.row and ins.row.get("subscription"):
                add(f"o:subscriptions:{ins.row['subscription']}")
    if not mode_known:
        add("meta:livemode")
    return names


def claim_note(claimed: str | None, note: str | None) -> str | None:
    if claimed is None:
        return note
    claim = f"claims event {claimed} (unverified)"
    return f"{note}; {claim}" if note else claim


def note_duplicate(
    res: EventResult, ins: Inspected, prior: tuple[str, str | None] | None
) -> None:
    """Say what the stored copy of a duplicate delivery did (`prior`: its
    outcome and reason in `events`)."""
    if prior is not None and prior[0] != "duplicate":
        res.note = f"stored earlier as {prior[0]}" + (f": {prior[1]}" if prior[1] else "")
        if prior[0] == "rejected":
            # Its first copy was rejected after inspection (livemode_mismatch):
            # this copy is the same finding.
            res.rejected_before = prior[1] or "rejected"
            res.outcome, res.reason = "rejected", res.rejected_before
            res.note = "already stored: this delivery was rejected before"
            res.stored_before = True


def event_rows(
    inspected: list[Inspected], results: list[EventResult], run_id: str, now: int
) -> list[tuple[Any, ...]]:
    """`events` rows (store/events.COLUMNS order) for the chunk's new deliveries;
    plain tuples: a NamedTuple per row cost ~3x more."""
    return [
        (
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
        for ins, res in zip(inspected, results, strict=True)
        # A duplicate delivery: the identical bytes are already in `events`.
        if res.reason != "delivery already stored" and not res.stored_before
    ]
