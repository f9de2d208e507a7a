"""A list endpoint read as concurrent `created` windows: the same set, sooner.

Stripe lists newest first (`created` descending) and accepts
`created[gte]` / `created[lt]` with `starting_after`. One sequential listing
of N objects is N/100 round trips one after another; disjoint windows of
whole seconds can be paged at once, each by its own cursor.

- The listing covers `[lo, upper)` with `upper` = the second it started, in
  windows; one trailing window `[upper, +inf)` pages whatever was created
  since (a fixed upper bound, so an object created meanwhile never shifts a
  window's pages). It is asked once the last windows are in flight, beside
  them (a listing that had every worker busy) or after them.
- The first request, `[upper, +inf)`, is also a probe for servers that
  ignore or refuse `created` (then: one sequential listing); `[lo, upper)`
  is asked with it and dropped unread if the listing turns sequential.
- Windows split on whole seconds, so objects of one second always belong to
  one window and come in Stripe's own order; nothing can fall between two
  windows or belong to two. Within a window the cursor guarantees the rest.
- A window whose page says `has_more` is split while workers are idle, into
  one part per idle worker: a continuation keeps the cursor and about 16
  pages' worth of seconds (judged by that page's span), fresh windows of
  doubling size below it, and the lowest takes everything left and splits in
  its turn. New windows grow with the full pages seen (slow start: 2, 4,
  8... after 1, 2, 4 round trips), so every worker is busy after a few
  round trips (one new window per round trip kept ~8 of 32 in flight: 43
  req/s at a 100 req/s limit) while a small account is not asked for many
  empty windows; a skewed account (most objects last month) spreads over
  every worker after a few pages, wherever its objects are. When most
  workers fall idle at the end, a window with two pages left is shared too.
  A fresh window that turns out empty, or a window's last partial page,
  costs one request; at 100,000 objects the listing asks ~4-9% more than
  ceil(N/100) requests.
- A page that fails (after the SDK's own retries) is asked again from the
  same cursor, up to `PAGE_ATTEMPTS` times (gateway/window_schedule.py): a
  window resumes where it stopped. If the cursor object was deleted meanwhile (`resource_missing`),
  the window restarts at the cursor's second without a cursor and skips the
  ids it already returned for that second.

All scheduling happens on one thread; worker threads only fetch
(stripe-python's StripeClient is safe to share between threads; its
RequestsClient keeps one HTTP session per thread), and pages reach the
caller through a queue of `concurrency` pages. At most `concurrency` pages
are being fetched and `2 x concurrency + 1` held at once, so memory is
bounded by the windows in flight, not by N.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from stripectl.errors import StripeAPIError


@dataclass(frozen=True)
class Page:
    """One answer of a list endpoint: what the caller gets (`items`) and,
    item by item, the (id, created) the schedule works with (`keys`).

    The items are the listed objects, or what the fetch made of them (mirror
    rows parsed in a helper process, gateway/page_pool.py): the schedule never
    looks inside them."""

    keys: list[tuple[str, int]]
    items: list[Any]
    has_more: bool

    def without(self, drop: Callable[[tuple[str, int]], bool]) -> Page:
        kept = [n for n, key in enumerate(self.keys) if not drop(key)]
        if len(kept) == len(self.keys):
            return self
        return Page([self.keys[n] for n in kept], [self.items[n] for n in kept], self.has_more)


def object_page(data: list[dict[str, Any]], has_more: bool) -> Page:
    """A page of plain objects, keyed by their own `id` and `created`."""
    return Page(checked_keys([(o.get("id"), o.get("created")) for o in data]), data, has_more)


def checked_keys(raw: list[tuple[Any, Any]]) -> list[tuple[str, int]]:
    """(id, created) pairs as the schedule needs them: a listed object
    without an integer `created` cannot be placed in a window."""
    for oid, created in raw:
        if not isinstance(created, int) or isinstance(created, bool):
            raise StripeAPIError(f"listed object {oid!r} has no integer `created`")
    return [(str(oid), created) for oid, created in raw]


# fetch(created_gte, created_lt or None, starting_after or None) -> Page
# (created_gte None: no `created` filter at all)
FetchPage = Callable[[int | None, int | None, str | None], Page]


@dataclass
class Window:
    lo: int  # created >= lo
    hi: int | None  # created < hi; None: no upper bound (the trailing window)
    cursor: str | None = None
    tail_second: int | None = None  # `created` of the oldest object returned so far
    tail_ids: set[str] = field(default_factory=set)  # ids returned at tail_second
    failures: int = 0
    delay: float = 0.0  # seconds to wait before the next try (after a failure)
    sequential: bool = False  # no `created` filter: the server cannot window
    dropped: bool = False  # asked beside the probe, then not wanted (a sequential listing)


@dataclass
class ListingStats:
    requests: int = 0
    windows: int = 0
    splits: int = 0
    resumed: int = 0  # pages asked again after a failure
    restarted: int = 0  # cursors lost (deleted object) and windows restarted
    helper_pages: int = 0  # pages parsed in a helper process (gateway/page_pool.py)
    helper_failed: str | None = None  # why the helper stopped being used, if it did


@contextmanager
def _rare_collections() -> Iterator[None]:
    """The cyclic GC's first generation every 50,000 allocations, not 700.

    A parsed page is ~5,000 dicts and lists without a single cycle, and the
    pages in flight stay alive while they wait: every 700 allocations the
    collector walked them again. orjson's parse of a page went from ~2 to
    ~6 ms and a sync of 100,000 subscriptions from 18 to 25 s at 100 req/s
    (bench/listing.py). Process-wide, restored when the listing ends.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 50_000), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def list_windows(
    fetch: FetchPage,
    *,
    lo: int,
    upper: int,
    concurrency: int,
    stats: ListingStats | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[Any]]:
    """Every object with created >= lo (the items of its Page), page by page
    (in no global order).

    The windows are scheduled on a thread of their own, which hands pages
    over through a queue of `concurrency` pages: fetching goes on while the
    caller stores or compares a page, and stops when the queue is full.
    """
    stats = stats if stats is not None else ListingStats()
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, concurrency))
    stop = threading.Event()

    def hand(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False  # the caller went away

    def produce() -> None:
        # The schedule imports this module's types: imported here, not at the top.
        from stripectl.gateway.window_schedule import scheduled

        try:
            for page in scheduled(fetch, lo=lo, upper=upper, concurrency=concurrency,
                                   stats=stats, sleep=sleep):
                if not hand(("page", page)):
                    return
            hand(("done", None))
        except BaseException as exc:  # handed to the caller, raised there
            hand(("error", exc))

    producer = threading.Thread(target=produce, name="stripectl-windows", daemon=True)
    with _rare_collections():
        producer.start()
        try:
            while True:
                kind, value = handoff.get()
                if kind == "page":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            stop.set()
            producer.join(timeout=5)
