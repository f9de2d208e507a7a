"""`access`: may this user (or customer) be provisioned right now, and why.

Online (the default) refreshes the subject's subscriptions from Stripe first
and writes them to the mirror under the newest-wins rule, then decides from
the mirror (so a webhook that landed meanwhile and is newer still wins).
Offline answers from the mirror alone and says how old that answer is;
with `max_age` a too-old answer is refused instead of trusted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from stripectl.store import Store
from stripectl.store import sync as sync_store
from stripectl.store.mirror import get_rows
from stripectl.webhooks.snapshots import invoice_row, subscription_row

if TYPE_CHECKING:
    from stripectl.gateway.client import Gateway


@dataclass
class SubscriptionDecision:
    subscription: str
    customer: str | None
    status: str | None
    granted: bool
    why: str
    as_of: int | None  # the snapshot the decision rests on (last_event_created)
    source: str | None  # webhook | api | sync: where that snapshot came from
    refresh: str | None = None  # created | updated | unchanged | kept: newer locally
    next_payment_attempt: int | None = None


@dataclass
class AccessReport:
    subject: str
    granted: bool
    why: str
    mode: str  # live | offline
    checked_at: int
    grace: str
    subscriptions: list[SubscriptionDecision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stale: bool = False

    @property
    def data_as_of(self) -> int | None:
        times = [s.as_of for s in self.subscriptions if s.as_of is not None]
        return min(times) if times else None

    @property
    def age_seconds(self) -> int | None:
        as_of = self.data_as_of
        return None if as_of is None else max(0, self.checked_at - as_of)

    @property
    def exit_code(self) -> int:
        return 0 if self.granted else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "granted": self.granted,
            "why": self.why,
            "mode": self.mode,
            "checked_at": self.checked_at,
            "grace": self.grace,
            "data_as_of": self.data_as_of,
            "age_seconds": self.age_seconds,
            "stale": self.stale,
            "subscriptions": [asdict(s) for s in self.subscriptions],
            "notes": self.notes,
        }


def _refresh(
    store: Store, gateway: Gateway, found: dict[str, Any], subject: str, *, grace: str, now: int
) -> tuple[list[str], dict[str, str]]:
    """Fetch the subject's live subscriptions into the mirror; returns (ids, refresh outcome)."""
    # Many customers or subscriptions: fetched concurrently, paced by the
    # gateway's one limiter (gateway/pacing.py).
    from stripectl.gateway.subscriptions import (
        retrieve_invoices,
        retrieve_subscriptions,
        subscriptions_of_customers,
    )

    live: dict[str, dict[str, Any]] = {}
    listed = subscriptions_of_customers(gateway, found["customers"])
    for customer in found["customers"]:
        for sub in listed[customer]:
            meta_user = (sub.get("metadata") or {}).get("user_id")
            if subject.startswith("cus_") or meta_user in (None, "", subject):
                live[sub["id"]] = sub
    missing: list[str] = []
    wanted = [s["id"] for s in found["subscriptions"]] + found["extra_subscription_ids"]
    fetched = retrieve_subscriptions(gateway, [sid for sid in wanted if sid not in live])
    for sid, got in fetched.items():
        if got is None:
            missing.append(sid)
        else:
            live[sid] = got
    invoices: list[dict[str, Any]] = []
    if grace == "retry":
        # past_due + retry policy: the retry schedule lives on the latest invoice.
        latest_ids: list[str] = []
        for sub in live.values():
            latest = sub.get("latest_invoice")
            latest_id = latest.get("id") if isinstance(latest, dict) else latest
            if sub.get("status") == "past_due" and latest_id:
                latest_ids.append(str(latest_id))
        invoices = [invoice_row(inv) for inv in retrieve_invoices(gateway, latest_ids).values()
                    if inv is not None]
    outcome_of: dict[str, str] = {sid: "not found in Stripe" for sid in missing}
    # Stamped `now`, taken before the fetch: a webhook from that second or
    # later keeps its row (store/sync.newer_than_snapshot).
    with store.transaction():
        outcome = sync_store.apply_subscription_snapshots(
            store, [subscription_row(s) for s in live.values()], snapshot_at=now,
            event_id=f"api:{now}", source="api", now=int(time.time()),
        )
        for inv in invoices:
            sync_store.apply_invoice_snapshot(store, inv, snapshot_at=now,
                                              event_id=f"api:{now}", now=int(time.time()))
    for name in ("created", "updated", "unchanged"):
        for sid in getattr(outcome, name):
            outcome_of[sid] = name
    for sid in outcome.skipped_newer:
        outcome_of[sid] = "kept: newer locally"
    return sorted(live), outcome_of


def check_access(
    store: Store,
    gateway: Gateway | None,
    subject: str,
    *,
    grace: str = "retry",
    max_age: int | None = None,
    clock: Callable[[], float] = time.time,
) -> AccessReport:
    """The access decision for a user id or a `cus_` id; offline when `gateway` is None."""
    now = int(clock())
    found = sync_store.subscriptions_of(store, subject)
    report = AccessReport(subject=subject, granted=False, why="", checked_at=now, grace=grace,
                          mode="offline" if gateway is None else "live")
    refresh: dict[str, str] = {}
    if gateway is None:
        ids = [s["id"] for s in found["subscriptions"]]
        if found["extra_subscription_ids"]:
            report.notes.append(
                "checkout sessions name subscriptions missing from the mirror: "
                + ", ".join(found["extra_subscription_ids"])
            )
    else:
        if not found["customers"] and not found["subscriptions"] and not found[
            "extra_subscription_ids"
        ]:
            report.notes.append(
                f"the mirror knows no customer or subscription for {subject!r}: pass the "
                "customer id (cus_...) or run `stripectl sync`"
            )
        ids, refresh = _refresh(store, gateway, found, subject, grace=grace, now=now)
        ids = sorted(set(ids) | {s["id"] for s in found["subscriptions"]})
    from stripectl.services.mirror_view import OverlayView
    from stripectl.services.subscription_report import subscription_report

    # Decided exactly as replay's report decides (latest invoice's retry).
    rows = get_rows(store, "subscriptions", ids)
    for item in subscription_report(OverlayView(store), sorted(rows), grace=grace, now=now):
        row = rows[item["id"]]
        dunning = item.get("dunning") or {}
        granted, why = bool(item["access"]), str(item["access_reason"])
        if refresh.get(item["id"]) == "not found in Stripe":
            # Only the mirror believes in it: never grant on that alone.
            granted, why = False, f"not found in Stripe (the mirror says {item.get('status')})"
        report.subscriptions.append(SubscriptionDecision(
            subscription=item["id"], customer=item.get("customer"), status=item.get("status"),
            granted=granted, why=why,
            as_of=row.get("last_event_created"), source=row.get("source"),
            refresh=refresh.get(item["id"]),
            next_payment_attempt=dunning.get("next_payment_attempt"),
        ))
    for sid, outcome in refresh.items():
        if outcome == "not found in Stripe":
            report.notes.append(f"{sid} is in the mirror but Stripe does not know it")
    _conclude(report, max_age)
    return report


def _conclude(report: AccessReport, max_age: int | None) -> None:
    granting = [s for s in report.subscriptions if s.granted]
    if not report.subscriptions:
        report.why = f"no subscription found for {report.subject}"
    elif granting:
        best = granting[0]
        report.granted = True
        report.why = f"{best.subscription} {best.why}"
    else:
        report.why = "; ".join(f"{s.subscription} {s.why}" for s in report.subscriptions)
    age = report.age_seconds
    if report.mode == "offline" and max_age is not None and report.granted and (
        age is None or age > max_age
    ):
        report.granted = False
        report.stale = True
        report.why = (
            f"mirror data age {_human(age)} exceeds --max-age {_human(max_age)}: "
            "refresh from Stripe (drop --offline) or run `stripectl sync`"
        )


def _human(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
