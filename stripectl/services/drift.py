"""Pure drift logic: one mirror entry against one Stripe snapshot.

Entries are compact tuples (see `Entry`) so the reconcile index of 100,000
subscriptions stays small; no I/O happens here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from stripectl.errors import UsageError
from stripectl.webhooks.statemachine import Access, decide_access

KINDS = (
    "missing_local",
    "missing_remote",
    "status",
    "access",
    "price",
    "quantity",
    "current_period_end",
    "cancel_at_period_end",
    "customer",
    "metadata",
    "livemode",
)


def check_kinds(kinds: list[str]) -> frozenset[str]:
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise UsageError(
            f"unknown drift kind {', '.join(bad)}", hint=f"kinds: {', '.join(KINDS)}"
        )
    return frozenset(kinds)


class Entry(NamedTuple):
    """The compared fields of one subscription (store.sync.INDEX_COLUMNS order)."""

    status: str | None
    price: str | None
    quantity: int | None
    current_period_end: int | None
    cancel_at_period_end: bool
    customer: str | None
    user_id: str | None
    plan_name: str | None
    livemode: bool
    last_event_created: int | None = None  # mirror only
    status_since: int | None = None  # mirror only


def _intern(value: Any) -> Any:
    # Few distinct statuses, prices and plan names across 100k rows: share them.
    return sys.intern(value) if isinstance(value, str) else value


def local_entry(row: tuple[Any, ...]) -> tuple[str, Entry]:
    """(id, Entry) from one `store.sync.iter_subscription_index` tuple."""
    (sid, status, price, qty, cpe, cape, customer, user_id, plan, live, lec, since) = row
    return sid, Entry(
        _intern(status), _intern(price), qty, cpe, bool(cape), customer, user_id,
        _intern(plan), bool(live), lec, since,
    )


def remote_entry(row: dict[str, Any]) -> Entry:
    """The compared fields of a Stripe subscription (any API shape), from
    its `subscription_row`."""
    return Entry(
        row["status"], row["price"], row["quantity"], row["current_period_end"],
        bool(row["cancel_at_period_end"]), row["customer"], row["user_id"],
        row["plan_name"], bool(row["livemode"]),
    )


@dataclass(frozen=True)
class Finding:
    subscription: str
    kind: str
    local: Any
    remote: Any

    def to_json(self) -> dict[str, Any]:
        return {"subscription": self.subscription, "kind": self.kind,
                "local": self.local, "remote": self.remote}


AccessFn = Callable[[str, str | None, int | None], Access]


def access_policy(
    *, grace: str, now: int, retry_scheduled: Callable[[str], bool]
) -> AccessFn:
    """decide_access with the mirror's retry schedule; same context both sides."""

    def decide(sub_id: str, status: str | None, status_since: int | None) -> Access:
        # Only past_due under the retry policy looks at invoices.
        retry = status == "past_due" and grace == "retry" and retry_scheduled(sub_id)
        return decide_access(
            status, grace=grace, retry_scheduled=retry, status_since=status_since, now=now
        )

    return decide


def _access_json(a: Access) -> dict[str, Any]:
    return {"granted": a.granted, "why": a.why}


def summary_of(entry: Entry) -> dict[str, Any]:
    """What a missing_local / missing_remote finding shows for the side that exists."""
    return {
        "status": entry.status,
        "customer": entry.customer,
        "price": entry.price,
        "user_id": entry.user_id,
    }


def diff(
    sub_id: str, local: Entry, remote: Entry, access: AccessFn, *, listing_at: int
) -> list[Finding]:
    """Every difference between the mirror and Stripe for one subscription."""
    out: list[Finding] = []
    if local.status != remote.status:
        out.append(Finding(sub_id, "status", local.status, remote.status))
        # Stripe's side changed status at some time the mirror never saw; the
        # Nd grace policy is judged as if it changed at the listing.
        mine = access(sub_id, local.status, local.status_since)
        theirs = access(sub_id, remote.status, listing_at)
        if mine.granted != theirs.granted:
            out.append(Finding(sub_id, "access", _access_json(mine), _access_json(theirs)))
    if local.price != remote.price:
        out.append(Finding(sub_id, "price", local.price, remote.price))
    if local.quantity != remote.quantity:
        out.append(Finding(sub_id, "quantity", local.quantity, remote.quantity))
    if local.current_period_end != remote.current_period_end:
        out.append(Finding(sub_id, "current_period_end", local.current_period_end,
                           remote.current_period_end))
    if local.cancel_at_period_end != remote.cancel_at_period_end:
        out.append(Finding(sub_id, "cancel_at_period_end", local.cancel_at_period_end,
                           remote.cancel_at_period_end))
    if local.customer != remote.customer:
        out.append(Finding(sub_id, "customer", local.customer, remote.customer))
    user, plan = remote.user_id, remote.plan_name
    if not user:
        # Replay keeps the user a Checkout Session named when the subscription
        # carries no user_id metadata: that is not drift.
        user, plan = local.user_id, plan or local.plan_name
    if (local.user_id, local.plan_name) != (user, plan):
        out.append(Finding(
            sub_id, "metadata",
            {"user_id": local.user_id, "plan_name": local.plan_name},
            {"user_id": remote.user_id, "plan_name": remote.plan_name},
        ))
    if local.livemode != remote.livemode:
        out.append(Finding(sub_id, "livemode", local.livemode, remote.livemode))
    return out
