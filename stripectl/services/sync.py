"""`sync`: bring the mirror's subscriptions up to Stripe's state.

Full sync lists every subscription (`status=all`, in concurrent `created`
windows paced by one limiter; one transaction per ~1,000 rows or second, so
a killed sync keeps what it committed) and upserts each as a
snapshot taken when the listing started: newest wins, so a webhook applied
while the listing ran is never rolled back. Incremental sync (`since`) pulls
events from the Events API instead (services/events_pull.py), falling back to
a full sync when there is no usable cursor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stripectl.store import Store
from stripectl.store.sync import apply_subscription_snapshots
from stripectl.webhooks.snapshots import subscription_row

if TYPE_CHECKING:
    from stripectl.gateway.client import Gateway

Progress = Callable[[int], None]
SYNCED_AT_KEY = "subscriptions_synced_at"  # start of the last complete listing
_KEEP_IDS = 100  # ids listed per outcome in the report
_BATCH_ROWS = 1000  # rows per transaction


@dataclass
class SyncReport:
    mode: str  # full | incremental
    listing_started_at: int | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"created": 0, "updated": 0, "unchanged": 0, "skipped_newer": 0}
    )
    ids: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    events: dict[str, Any] | None = None
    ok: bool = True  # False when an incremental pull rejected or flagged events
    requests: int = 0  # list requests of a full sync

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "listing_started_at": self.listing_started_at,
            "summary": {**self.counts, "total": self.total},
            "requests": self.requests,
            "examples": self.ids,
            "notes": self.notes,
            "events": self.events,
        }


def full_sync(
    store: Store,
    gateway: Gateway,
    *,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> SyncReport:
    # Raw pages, not the SDK's auto_paging_iter: building StripeObjects costs
    # ~1.6 ms per subscription, 6x the rest of the sync (bench/reconcile.py).
    # Concurrent `created` windows, paced by the gateway's limiter; the pages
    # arrive as mirror rows (made in a helper process on a large account).
    from stripectl.gateway.subscriptions import list_subscription_pages
    from stripectl.gateway.windows import ListingStats

    started = int(clock())
    report = SyncReport(mode="full", listing_started_at=started)
    stats = ListingStats()
    batch: list[dict[str, Any]] = []
    flushed = time.monotonic()

    def flush() -> None:
        with store.transaction():
            outcome = apply_subscription_snapshots(
                store, batch, snapshot_at=started, event_id=f"sync:{started}",
                source="sync", now=int(clock()),
            )
        for name in report.counts:
            ids: list[str] = getattr(outcome, name)
            report.counts[name] += len(ids)
            kept = report.ids.setdefault(name, [])
            kept.extend(ids[: max(0, _KEEP_IDS - len(kept))])
        if progress is not None:
            progress(len(batch))
        batch.clear()

    pages = list_subscription_pages(
        gateway, upper=started, transform=subscription_row, status="all", stats=stats
    )
    with closing(pages):
        for rows in pages:
            batch.extend(rows)
            # A transaction per ~1,000 rows or second, whichever comes first: a
            # commit costs ~10 ms, and a killed sync still keeps what it committed.
            if len(batch) >= _BATCH_ROWS or time.monotonic() - flushed >= 1.0:
                flush()
                flushed = time.monotonic()
    if batch:
        flush()
    with store.transaction():
        store.meta_set(SYNCED_AT_KEY, json.dumps(started))
        if store.meta_get("livemode") is None:
            # The mirror's mode, as replay records it (services/mirror_view.py).
            store.meta_set("livemode", "1" if gateway.livemode else "0")
    report.ids = {k: v for k, v in report.ids.items() if v and k != "unchanged"}
    report.requests = stats.requests
    if stats.helper_failed is not None:
        report.notes.append(f"{stats.helper_failed}: the rest of the listing was parsed in "
                            "this process (slower; nothing was lost)")
    return report


def _resume_from(store: Store) -> int | None:
    """Where an incremental sync picks up: the events cursor or the last full
    listing, whichever is later (the listing already reflects older events)."""
    from stripectl.services.events_pull import CURSOR_KEY, read_cursor

    cursor = read_cursor(store, CURSOR_KEY)
    synced = store.meta_get(SYNCED_AT_KEY)
    points = [int(cursor["created"])] if cursor is not None else []
    if synced is not None and synced.strip().isdigit():
        points.append(int(synced))
    return max(points) if points else None


def incremental_sync(
    store: Store,
    gateway: Gateway,
    *,
    since: int | None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> SyncReport:
    """Events since `since` (None: since the cursor); a full sync when that is impossible."""
    from stripectl.services.events_pull import RETENTION_SECONDS, pull_events

    now = int(clock())
    start = since if since is not None else _resume_from(store)
    reason = None
    if start is None:
        reason = "no events cursor in the mirror yet"
    elif start < now - RETENTION_SECONDS:
        what = "--since" if since is not None else "the events cursor"
        reason = f"{what} is older than the Events API's 30-day retention"
    if reason is not None:
        # The next incremental run continues from this listing's start.
        report = full_sync(store, gateway, progress=progress, clock=clock)
        report.notes.append(f"{reason}: did a full sync instead")
        return report
    pulled = pull_events(
        store, gateway, since=start, types=None, delivery_failed=False, progress=progress,
        now=now,
        # Resuming from a full listing newer than the cursor is no gap: the
        # listing reflects the events before it (see _resume_from).
        covered_until=start if since is None else None,
    )
    report = SyncReport(mode="incremental", ok=pulled.ok)
    report.events = pulled.to_json()
    report.notes.extend(pulled.warnings)
    return report
