"""`reconcile`: the mirror against a fresh listing of every live subscription.

Streaming: Stripe's subscriptions arrive a page at a time from concurrent
`created` windows (gateway/windows.py); each page is compared with the
mirror rows of its ids (one indexed query) and its ids are checked off in a
temporary table; mirror rows never checked off are missing in Stripe.
Memory is the pages in flight plus the findings, not the account's size;
requests are ceil(N/100) plus about one per window, plus one retrieve per
missing_remote row only with --fix. Never the Search API: it lags by up to
an hour.

A mirror row whose snapshot is newer than the listing's start (a webhook
applied meanwhile), or from an event in that same second, is skipped, never
reported as drift (store/sync.newer_than_snapshot).
"""

from __future__ import annotations

import functools
import itertools
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stripectl.services.drift import (
    KINDS,
    AccessFn,
    Finding,
    access_policy,
    diff,
    local_entry,
    remote_entry,
    summary_of,
)
from stripectl.store import Store
from stripectl.store import runs as run_store
from stripectl.store import sync as sync_store
from stripectl.webhooks.snapshots import subscription_row

if TYPE_CHECKING:
    from stripectl.gateway.client import Gateway

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ReconcileOptions:
    grace: str = "retry"
    ignore: frozenset[str] = frozenset()
    fix: bool = False  # plan repairs of the mirror
    apply: bool = False  # ... and apply them (--yes); never writes to Stripe
    collect_in_sync: bool = False  # keep in-sync ids (one JUnit case each)


@dataclass
class FixAction:
    subscription: str
    action: str  # insert | update | delete
    kinds: list[str]
    outcome: str = "planned"  # planned | applied | skipped: newer locally

    def to_json(self) -> dict[str, Any]:
        return {"subscription": self.subscription, "action": self.action,
                "kinds": self.kinds, "outcome": self.outcome}


@dataclass
class ReconcileReport:
    started_at: int
    livemode: bool
    finished_at: int = 0
    local_count: int = 0
    remote_count: int = 0
    compared: int = 0
    in_sync: int = 0
    requests: int = 0
    findings: list[Finding] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)
    skipped_newer: list[str] = field(default_factory=list)
    in_sync_ids: list[str] = field(default_factory=list)
    fix_plan: list[FixAction] | None = None
    fix_applied: bool = False
    run_id: int | None = None

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(f.kind for f in self.findings).items()))

    @property
    def drifted_subscriptions(self) -> int:
        return len({f.subscription for f in self.findings})

    @property
    def fixed(self) -> int:
        return sum(1 for a in self.fix_plan or [] if a.outcome == "applied")

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0

    def summary(self) -> dict[str, Any]:
        return {
            "listing_started_at": self.started_at,
            "livemode": self.livemode,
            "local": self.local_count,
            "remote": self.remote_count,
            "compared": self.compared,
            "in_sync": self.in_sync,
            "drifted_subscriptions": self.drifted_subscriptions,
            "drift": len(self.findings),
            "by_kind": self.counts,
            "ignored": self.ignored,
            "skipped_newer_locally": len(self.skipped_newer),
            "requests": self.requests,
            "fixed": self.fixed,
            "run_id": self.run_id,
        }

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "summary": self.summary(),
            "drift": [f.to_json() for f in self.findings],
            "skipped": [
                {"subscription": s, "reason": "newer locally"} for s in self.skipped_newer
            ],
        }
        if self.fix_plan is not None:
            data["fix"] = {
                "applied": self.fix_applied,
                "actions": [a.to_json() for a in self.fix_plan],
            }
        return data


def reconcile(
    store: Store,
    gateway: Gateway,
    options: ReconcileOptions,
    *,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> ReconcileReport:
    from stripectl.gateway.subscriptions import list_subscription_pages
    from stripectl.gateway.windows import ListingStats

    started = int(clock())
    report = ReconcileReport(started_at=started, livemode=gateway.livemode)
    report.local_count = sync_store.count_subscriptions(store)
    access = access_policy(
        grace=options.grace, now=started, retry_scheduled=_retry_lookup(store)
    )
    repairs: dict[str, dict[str, Any]] = {}
    ignored: Counter[str] = Counter()

    def keep(found: list[Finding]) -> list[Finding]:
        kept = [f for f in found if f.kind not in options.ignore]
        ignored.update(f.kind for f in found if f.kind in options.ignore)
        report.findings.extend(kept)
        return kept

    stats = ListingStats()
    sync_store.listed_begin(store)
    try:
        # Each subscription arrives as its mirror row (made in a helper
        # process on a large account: gateway/page_pool.py).
        pages = list_subscription_pages(
            gateway, upper=started, transform=subscription_row, status="all", stats=stats
        )
        with closing(pages):
            for page in pages:
                by_id = {row["id"]: row for row in page}
                fresh = sync_store.listed_add(store, list(by_id))
                rows = sync_store.index_rows(store, fresh)
                for sid in fresh:
                    _compare(store, report, options, access, keep, repairs, by_id[sid],
                             rows.get(sid), started)
                report.remote_count += len(fresh)
                if progress is not None:
                    progress(len(page))
        report.requests = stats.requests
        missing_remote: list[str] = []
        for row in sync_store.iter_unlisted_index(store):
            sid, local = local_entry(row)
            if sync_store.subscription_newer_than_snapshot(
                store, sid, local.last_event_created, started
            ):
                report.skipped_newer.append(sid)
            elif keep([Finding(sid, "missing_remote", summary_of(local), None)]):
                missing_remote.append(sid)
    finally:
        sync_store.listed_end(store)
    report.ignored = dict(sorted(ignored.items()))
    order = {kind: n for n, kind in enumerate(KINDS)}
    report.findings.sort(key=lambda f: (f.subscription, order[f.kind]))
    report.skipped_newer.sort()
    if options.collect_in_sync:
        report.in_sync_ids.sort()
    if options.fix:
        _fix(store, gateway, report, repairs, missing_remote, apply=options.apply)
    report.finished_at = int(clock())
    _record(store, report, options)
    return report


def _compare(
    store: Store,
    report: ReconcileReport,
    options: ReconcileOptions,
    access: AccessFn,
    keep: Callable[[list[Finding]], list[Finding]],
    repairs: dict[str, dict[str, Any]],
    listed: dict[str, Any],
    row: tuple[Any, ...] | None,
    started: int,
) -> None:
    """One listed subscription (its `subscription_row`) against its mirror
    row (None: not mirrored)."""
    sid = listed["id"]
    remote = remote_entry(listed)
    if row is None:
        if keep([Finding(sid, "missing_local", None, summary_of(remote))]) and options.fix:
            repairs[sid] = listed
        return
    _, local = local_entry(row)
    if sync_store.subscription_newer_than_snapshot(store, sid, local.last_event_created, started):
        report.skipped_newer.append(sid)
        return
    report.compared += 1
    if keep(diff(sid, local, remote, access, listing_at=started)):
        if options.fix:
            repairs[sid] = listed
    else:
        report.in_sync += 1
        if options.collect_in_sync:
            report.in_sync_ids.append(sid)


def _retry_lookup(store: Store) -> Callable[[str], bool]:
    """Whether the mirror knows of a scheduled payment retry (as replay's report
    decides it); asked only for past_due drift, so queried lazily."""
    from stripectl.services.subscription_report import dunning_of, latest_invoices
    from stripectl.store.mirror import invoices_for_subscriptions

    def scheduled(sub_id: str) -> bool:
        latest = latest_invoices(invoices_for_subscriptions(store, [sub_id])).get(sub_id)
        dunning = dunning_of(latest)
        return bool(dunning and dunning["next_payment_attempt"])

    return functools.cache(scheduled)


def _fix(
    store: Store,
    gateway: Gateway,
    report: ReconcileReport,
    repairs: dict[str, dict[str, Any]],
    missing_remote: list[str],
    *,
    apply: bool,
) -> None:
    """Plan (and with `apply`, make) the mirror match Stripe. Reads Stripe only."""
    from stripectl.gateway.subscriptions import retrieve_subscriptions

    kinds: dict[str, list[str]] = {}
    for f in report.findings:
        kinds.setdefault(f.subscription, []).append(f.kind)
    plan: list[FixAction] = []
    deletes: list[str] = []
    # Not in the listing: confirm before deleting anything (subscriptions on a
    # test clock are not listed without `customer`). Concurrent, paced.
    confirmed = retrieve_subscriptions(gateway, missing_remote)
    report.requests += len(missing_remote)
    for sid in missing_remote:
        sub = confirmed[sid]
        if sub is None:
            deletes.append(sid)
            plan.append(FixAction(sid, "delete", kinds[sid]))
        else:
            repairs[sid] = subscription_row(sub)
    for sid in repairs:
        action = "insert" if kinds[sid] == ["missing_local"] else "update"
        plan.append(FixAction(sid, action, kinds[sid]))
    plan.sort(key=lambda a: a.subscription)
    report.fix_plan = plan
    if not apply or not plan:
        return
    with store.transaction():
        outcome = sync_store.apply_subscription_snapshots(
            store, repairs.values(), snapshot_at=report.started_at,
            event_id=f"reconcile:{report.started_at}", source="sync", now=int(time.time()),
        )
        deleted = set(sync_store.delete_subscriptions(
            store, deletes, snapshot_at=report.started_at
        ))
    newer = set(outcome.skipped_newer)
    for step in plan:
        if step.subscription in newer or (
            step.action == "delete" and step.subscription not in deleted
        ):
            step.outcome = "skipped: newer locally"
        else:
            step.outcome = "applied"
    report.fix_applied = True


def _record(store: Store, report: ReconcileReport, options: ReconcileOptions) -> None:
    with store.transaction():
        report.run_id = run_store.record_run(store, {
            "started_at": report.started_at,
            "finished_at": report.finished_at,
            "livemode": int(report.livemode),
            "local_count": report.local_count,
            "remote_count": report.remote_count,
            "compared": report.compared,
            "in_sync": report.in_sync,
            "skipped_newer": len(report.skipped_newer),
            "drift_count": len(report.findings),
            "drifted_subscriptions": report.drifted_subscriptions,
            "counts": report.counts,
            "ignored": sorted(options.ignore),
            "fixed": report.fixed,
            "requests": report.requests,
            "exit_code": report.exit_code,
        })


def set_exit_code(store: Store, run_id: int, exit_code: int) -> None:
    """The exit code the process really returned, when writing the reports
    failed after the run was recorded (so --history never shows a drift
    run's 1 for a run that ended in 2)."""
    with store.transaction():
        run_store.set_exit_code(store, run_id, exit_code)


def history(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """Recent runs, newest first, each with its change against the run before."""
    rows = run_store.recent_runs(store, limit + 1)
    for newer, older in itertools.pairwise(rows):
        newer["delta"] = newer["drift_count"] - older["drift_count"]
    if len(rows) > limit:
        rows = rows[:limit]
    elif rows:
        rows[-1]["delta"] = None
    return rows
