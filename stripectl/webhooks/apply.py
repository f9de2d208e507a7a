"""What one verified event does to the mirror: applied, stale, anomaly or ignored.

Ordering rule (README "Ordering"): a snapshot replaces the mirror's row only
if it is newer. Newer means, in this order:
  1. a later `event.created`;
  2. same second: `*.created` < any other type < `*.deleted`;
  3. same second and rank: the previous_attributes chain, i.e. an event whose
     previous_attributes.status equals the status the row holds comes after it,
     and an event whose status is the row's previous status comes before it;
  4. otherwise the larger event id (arbitrary but deterministic).
A newer subscription snapshot that leaves a terminal status, or jumps to a
status unreachable from the current one, is an anomaly: recorded, not applied.
"""

from __future__ import annotations

from typing import Any, Protocol

from stripectl.webhooks.inspect import Inspected
from stripectl.webhooks.statemachine import transition_problem


class MirrorView(Protocol):
    def get(self, table: str, row_id: str) -> dict[str, Any] | None: ...

    def put(self, table: str, row: dict[str, Any]) -> None: ...

    def checkout_link(self, subscription_id: str) -> tuple[str | None, str | None] | None: ...


def type_rank(event_type: str | None) -> int:
    if not event_type:
        return 1
    if event_type.endswith(".created"):
        return 0
    if event_type.endswith(".deleted"):
        return 2
    return 1


def sort_key(ins: Inspected) -> tuple[int, int, str]:
    return (ins.created or 0, type_rank(ins.type), ins.event_id or "")


def is_newer(ins: Inspected, new_status: str | None, stored: dict[str, Any]) -> bool:
    created = ins.created or 0
    stored_created = stored.get("last_event_created")
    if stored_created is None or created != stored_created:
        return stored_created is None or created > stored_created
    if not str(stored.get("last_event_id") or "").startswith("evt_"):
        # The row is a listing / API snapshot stamped with the second it was
        # taken: an event of that same second may be later, never earlier.
        return True
    rank, stored_rank = type_rank(ins.type), type_rank(stored.get("last_event_type"))
    if rank != stored_rank:
        return rank > stored_rank
    prev = ins.prev_status
    if prev is not None and prev == stored.get("status") and new_status != prev:
        return True
    stored_prev = stored.get("last_prev_status")
    if stored_prev is not None and stored_prev == new_status and stored.get("status") != new_status:
        return False
    return (ins.event_id or "") > (stored.get("last_event_id") or "")


def apply_event(
    view: MirrorView, ins: Inspected, *, now: int, source: str
) -> tuple[str, str | None]:
    """Return (outcome, reason) and update `view` when applied."""
    if ins.table is None or ins.row is None:
        return "ignored", ins.ignore or "unhandled event type"
    table = ins.table
    row = dict(ins.row)
    stored = view.get(table, row["id"])
    new_status = row.get("status")
    if stored is not None and not is_newer(ins, new_status, stored):
        _refine_from_stale(view, table, ins, new_status, stored)
        return "stale", f"mirror holds a newer snapshot ({stored.get('last_event_id')})"

    if table == "subscriptions":
        problem = transition_problem(stored.get("status") if stored else None, str(new_status))
        if problem is not None:
            return "anomaly", problem
        row["status_since"], row["status_since_exact"] = _status_since(ins, new_status, stored)
        if not row.get("user_id"):
            link = view.checkout_link(row["id"])
            if link is None and stored is not None:
                link = (stored.get("user_id"), stored.get("plan_name"))
            if link is not None:
                row["user_id"], row["plan_name"] = link[0], row.get("plan_name") or link[1]
    elif table == "invoices":
        row["action_required"] = _action_required(ins, row, stored)
        row["last_failure_at"] = _last_failure(ins, stored)
    elif table == "checkout_sessions" and stored is not None:
        row["idempotency_key"] = stored.get("idempotency_key")

    row.update(
        last_event_id=ins.event_id,
        last_event_created=ins.created,
        last_event_type=ins.type,
        last_prev_status=ins.prev_status,
        updated_at=now,
        source=source,
    )
    view.put(table, row)
    if table == "checkout_sessions" and row.get("subscription") and row.get("user_id"):
        _link_subscription(view, row)
    return "applied", None


def _changes_status(ins: Inspected, new_status: str | None) -> bool:
    """The event is the moment the subscription entered `new_status`."""
    return bool(ins.type and ins.type.endswith(".created")) or (
        ins.prev_status is not None and ins.prev_status != new_status
    )


def _status_since(
    ins: Inspected, new_status: str | None, stored: dict[str, Any] | None
) -> tuple[int | None, int]:
    """(status_since, exact) for a snapshot that replaces `stored`.

    `exact` marks a time taken from the event that made the change; without
    one the time is when the status was first seen, refined later if the
    change event arrives out of order (see _refine_from_stale). The latest
    change into the current status wins, so the result does not depend on
    delivery order when the history is complete.
    """
    exact = _changes_status(ins, new_status)
    if stored is None or stored.get("status") != new_status:
        return ins.created, int(exact)
    since, since_exact = stored.get("status_since"), int(stored.get("status_since_exact") or 0)
    if exact and (not since_exact or since is None or (ins.created or 0) > since):
        return ins.created, 1
    return since, since_exact


ACTION_REQUIRED = "invoice.payment_action_required"
SETTLED = frozenset({"paid", "void", "uncollectible"})


def _same_open_attempt(row: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    """`row` and `stored` are the same unsettled payment attempt of one invoice."""
    return (
        stored is not None
        and row.get("status") not in SETTLED
        and stored.get("status") not in SETTLED
        and row.get("attempt_count") == stored.get("attempt_count")
    )


def _action_required(ins: Inspected, row: dict[str, Any], stored: dict[str, Any] | None) -> int:
    """One 3-D Secure attempt sends invoice.payment_failed and
    invoice.payment_action_required, often in the same second: whichever
    the ordering rule puts last, the attempt needs the customer. So the flag
    is kept across events of the same unsettled attempt (same attempt_count)
    and cleared by a settled invoice (a payment makes it `paid`) or a later
    attempt; _refine_from_stale sets it when the action_required event is
    the older one. Either way the result does not depend on event ids or
    delivery order."""
    if ins.type == ACTION_REQUIRED:
        return int(row.get("status") not in SETTLED)
    if stored is not None and stored.get("action_required") and _same_open_attempt(row, stored):
        return 1
    return 0


def _last_failure(ins: Inspected, stored: dict[str, Any] | None) -> int | None:
    before = stored.get("last_failure_at") if stored else None
    if ins.type != "invoice.payment_failed":
        return before
    return max(before or 0, ins.created or 0) or None


def _refine_from_stale(
    view: MirrorView, table: str, ins: Inspected, new_status: str | None, stored: dict[str, Any]
) -> None:
    """An older event does not replace the snapshot, but it may date it: the
    change into the current status, or an invoice's last failed attempt."""
    if table == "subscriptions" and stored.get("status") == new_status and _changes_status(ins, new_status):
        since, since_exact = stored.get("status_since"), stored.get("status_since_exact")
        if not since_exact or since is None or (ins.created or 0) > since:
            view.put(table, {**stored, "status_since": ins.created, "status_since_exact": 1})
    elif table == "invoices":
        changes: dict[str, Any] = {}
        last = _last_failure(ins, stored)
        if last != stored.get("last_failure_at"):
            changes["last_failure_at"] = last
        if (
            ins.type == ACTION_REQUIRED
            and not stored.get("action_required")
            and _same_open_attempt(ins.row or {}, stored)
        ):
            changes["action_required"] = 1
        if changes:
            view.put(table, {**stored, **changes})


def _link_subscription(view: MirrorView, session: dict[str, Any]) -> None:
    """checkout.session.completed names the user of a subscription we may already hold."""
    sub = view.get("subscriptions", session["subscription"])
    if sub is None or sub.get("user_id"):
        return
    view.put(
        "subscriptions",
        {
            **sub,
            "user_id": session["user_id"],
            "plan_name": sub.get("plan_name") or session.get("plan_name"),
        },
    )
