"""Catch up on missed events from the Events API and apply them like webhooks.

Stripe lists events newest first; the mirror wants them oldest first. Pages
are fetched in concurrent `created` windows (gateway/windows.py) into an
anonymous temp file (only an offset and a `created` per event stay in
memory, so a 30-day catch-up of a busy account does not hold every event in
RAM), then read back oldest first and streamed through
`services.replay.replay` as trusted deliveries (fetched with our own key: no
signature). Event ids already accepted in the inbox are skipped.

The cursor (meta `events_cursor`) is the newest event this run stored; it is
written only after replay has committed everything, so a killed run resumes
from the previous cursor and the inbox dedupe absorbs the overlap. A run
whose `--since` starts after the cursor does not move it (the events in
between were not read; the next plain pull reads them) and says so. A resumed
run starts CURSOR_OVERLAP seconds before the cursor. A run
filtered by type or delivery status keeps its own cursor (`events_cursor?...`):
it says nothing about events outside its filter.
"""

from __future__ import annotations

import json
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from stripectl.errors import UsageError
from stripectl.timeparse import format_ts
from stripectl.webhooks.delivery import Delivery

if TYPE_CHECKING:
    from stripectl.gateway.client import Gateway
    from stripectl.services.replay_report import ReplayReport
    from stripectl.store import Store

CURSOR_KEY = "events_cursor"
RETENTION_SECONDS = 30 * 86400  # the Events API keeps 30 days
_DEDUPE_BATCH = 500
# Resuming re-reads this many seconds before the cursor: an event committed a
# little after a later one must not fall between two pulls. Re-read events
# are skipped by id, so the overlap costs bandwidth only.
CURSOR_OVERLAP = 300


@dataclass
class PullReport:
    since: int
    fetched: int = 0
    new: int = 0
    duplicate: int = 0
    replay: ReplayReport | None = None
    warnings: list[str] = field(default_factory=list)
    cursor: dict[str, Any] | None = None  # {"created", "id"} after this run
    types: list[str] | None = None
    delivery_failed: bool = False

    @property
    def ok(self) -> bool:
        return self.replay.ok if self.replay is not None else True

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "types": self.types,
            "delivery_failed": self.delivery_failed,
            "fetched": self.fetched,
            "new": self.new,
            "duplicate": self.duplicate,
            "cursor": self.cursor,
            "warnings": self.warnings,
            "replay": self.replay.to_json() if self.replay is not None else None,
        }


def cursor_key(types: list[str] | None, delivery_failed: bool) -> str:
    if not types and not delivery_failed:
        return CURSOR_KEY
    parts = []
    if types:
        parts.append("types=" + ",".join(sorted(set(types))))
    if delivery_failed:
        parts.append("delivery_failed=1")
    return f"{CURSOR_KEY}?{'&'.join(parts)}"


def read_cursor(store: Store, key: str) -> dict[str, Any] | None:
    raw = store.meta_get(key)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("created"), int):
        return None
    return value


def _resume_point(
    store: Store, types: list[str] | None, delivery_failed: bool
) -> dict[str, Any] | None:
    """The newest cursor that covers this filter: its own, or the unfiltered one."""
    own = read_cursor(store, cursor_key(types, delivery_failed))
    unfiltered = read_cursor(store, CURSOR_KEY) if (types or delivery_failed) else None
    found = [c for c in (own, unfiltered) if c is not None]
    return max(found, key=lambda c: int(c["created"])) if found else None


class _Spill:
    """Events appended as fetched, read back oldest first.

    Windows arrive in any order, so each event keeps its `created` and its
    arrival number: oldest first is `created` ascending and, within one
    second (always one window, paged in Stripe's order), arrival descending:
    exactly the reverse of one sequential newest-first listing, as before.
    Memory: 16 bytes per event, the bodies stay in the temp file.
    """

    def __init__(self) -> None:
        # Closed by close(), which pull_events calls in a finally.
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="stripectl-events-")  # noqa: SIM115
        self.offsets = array("q")
        self.created = array("q")
        self.end = 0

    def append(self, body: bytes, created: int = 0) -> None:
        self.offsets.append(self.end)
        self.created.append(created)
        self.file.write(body)
        self.end += len(body)

    def __len__(self) -> int:
        return len(self.offsets)

    def oldest_first(self) -> Iterator[bytes]:
        self.file.flush()
        created, count = self.created, len(self.offsets)
        order = sorted(range(count), key=lambda n: (created[n] << 32) - n)
        for n in order:
            start = self.offsets[n]
            stop = self.offsets[n + 1] if n + 1 < count else self.end
            self.file.seek(start)
            yield self.file.read(stop - start)

    def close(self) -> None:
        self.file.close()


def _fetch(
    gateway: Gateway,
    spill: _Spill,
    *,
    since: int,
    upper: int,
    types: list[str] | None,
    delivery_failed: bool,
    progress: Callable[[int], None] | None,
) -> dict[str, Any] | None:
    """Every event since `since` into `spill`; returns the newest event's (created, id)."""
    from stripectl.gateway.events import list_event_pages

    newest: dict[str, Any] | None = None
    pages = list_event_pages(
        gateway, since=since, upper=upper, types=types, delivery_failed=delivery_failed
    )
    for page in pages:
        for event in page:
            created = event.get("created")
            stamp = created if isinstance(created, int) else 0
            if isinstance(created, int) and (newest is None or created > newest["created"]):
                newest = {"created": created, "id": event.get("id")}
            spill.append(json.dumps(event).encode(), stamp)
        if progress is not None and page:
            progress(len(page))
    return newest


def _new_deliveries(
    store: Store, bodies: Iterator[bytes], received_at: int, skipped: list[int]
) -> Iterator[Delivery]:
    """Trusted deliveries for events not yet accepted; counts skips in `skipped[0]`."""
    from stripectl.store import events as store_events

    def flush(batch: list[tuple[str | None, bytes]]) -> Iterator[Delivery]:
        known = store_events.accepted_event_ids(store, [eid for eid, _ in batch if eid])
        for eid, body in batch:
            if eid is not None and eid in known:
                skipped[0] += 1
                continue
            yield Delivery(
                source="api", body=body, headers={}, received_at=received_at, trusted=True
            )

    batch: list[tuple[str | None, bytes]] = []
    for body in bodies:
        try:
            eid = json.loads(body).get("id")
        except (ValueError, AttributeError):
            eid = None
        batch.append((eid if isinstance(eid, str) else None, body))
        if len(batch) >= _DEDUPE_BATCH:
            yield from flush(batch)
            batch = []
    if batch:
        yield from flush(batch)


def pull_events(
    store: Store,
    gateway: Gateway,
    *,
    since: int | None,
    types: list[str] | None,
    delivery_failed: bool,
    progress: Callable[[int], None] | None = None,
    now: int | None = None,
    covered_until: int | None = None,
) -> PullReport:
    """Fetch events created at or after `since` (None: the stored cursor) and apply them.

    `progress` is advanced once per event fetched. A `since` after the stored
    cursor leaves the cursor where it is (with a warning), unless the caller
    says the mirror already reflects everything before `covered_until` (a
    full listing started then) and `since` is not after that.
    """
    from stripectl.services.replay import ReplayOptions, replay

    clock = int(time.time()) if now is None else now
    types = sorted(set(types)) if types else None
    key = cursor_key(types, delivery_failed)
    warnings: list[str] = []
    previous = _resume_point(store, types, delivery_failed)
    from_cursor = previous if since is None else None
    if since is None:
        if previous is None:
            raise UsageError(
                "no events cursor in this mirror yet: nothing to continue from",
                hint="pass --since (e.g. --since 2h) for the first pull",
            )
        since = int(previous["created"]) - CURSOR_OVERLAP
    floor = clock - RETENTION_SECONDS
    if since < floor:
        what = "--since" if from_cursor is None else "the events cursor"
        warnings.append(
            f"{what} {format_ts(since)} is beyond the Events API's 30-day retention: "
            f"pulling from {format_ts(floor)}; events before that are gone from Stripe and "
            "were NOT pulled (refresh the mirror from current objects with `stripectl sync`)"
        )
        since = floor
    if since > clock:
        raise UsageError(f"--since {format_ts(since)} is in the future")

    report = PullReport(
        since=since, types=types, delivery_failed=delivery_failed, warnings=warnings
    )
    spill = _Spill()
    try:
        newest = _fetch(
            gateway,
            spill,
            since=since,
            upper=clock,
            types=types,
            delivery_failed=delivery_failed,
            progress=progress,
        )
        report.fetched = len(spill)
        skipped = [0]
        deliveries = _new_deliveries(store, spill.oldest_first(), clock, skipped)
        report.replay = replay(store, deliveries, ReplayOptions(secrets=[]), now=clock)
    finally:
        spill.close()
    report.duplicate = skipped[0] + report.replay.summary.get("duplicate", 0)
    report.new = report.fetched - report.duplicate
    # A start after the cursor leaves [cursor, since) unread: moving the cursor
    # past it would make the next plain pull skip that gap silently. Not when
    # the cursor is beyond retention: that gap is gone (warned above).
    gap = previous is not None and floor <= int(previous["created"]) < since and (
        covered_until is None or since > covered_until
    )
    if gap:
        assert previous is not None
        warnings.append(
            f"--since {format_ts(since)} is after the events cursor "
            f"{format_ts(int(previous['created']))}: events between them were NOT pulled; "
            "the cursor stays put (run `stripectl events pull` without --since to pull them)"
        )
    if newest is not None and not gap and (
        previous is None or newest["created"] >= int(previous["created"])
    ):
        with store.transaction():
            store.meta_set(key, json.dumps(newest))
        report.cursor = newest
    else:
        report.cursor = previous
    return report
