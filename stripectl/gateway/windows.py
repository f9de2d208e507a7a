"""A list endpoint read as concurrent `created` windows: the same set, sooner.

Stripe lists newest first (`created` descending) and accepts
`created[gte]` / `created[lt]` with `starting_after`. One sequential listing
of N objects is N/100 round trips one after another; disjoint windows of
whole seconds can be paged at once, each by its own cursor.

- The listing covers `[lo, upper)` with `upper` = the second it started, in
  windows; then, after every window is done, one trailing window
  `[upper, +inf)` pages whatever was created since (a fixed upper bound, so
  an object created meanwhile never shifts a window's pages).
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
  every worker after a few pages, wherever its objects are. A fresh window
  that turns out empty costs one request; at 100,000 objects the listing
  asks ~4% more than ceil(N/100) requests.
- A page that fails (after the SDK's own retries) is asked again from the
  same cursor, up to `PAGE_ATTEMPTS` times: a window resumes where it
  stopped. If the cursor object was deleted meanwhile (`resource_missing`),
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

import concurrent.futures as cf
import gc
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from stripectl.errors import NetworkError, StripeAPIError

# fetch(created_gte, created_lt or None, starting_after or None) -> (page, has_more)
# (created_gte None: no `created` filter at all)
FetchPage = Callable[[int | None, int | None, str | None], tuple[list[dict[str, Any]], bool]]

PAGE_ATTEMPTS = 4  # tries per page at this level, on top of the SDK's retries
_CHUNK_PAGES = 16  # a split's continuation keeps about this many pages of the rest
_MIN_PART_PAGES = 4  # no window of its own for less than this (at the last page's density)


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


@dataclass
class ListingStats:
    requests: int = 0
    windows: int = 0
    splits: int = 0
    resumed: int = 0  # pages asked again after a failure
    restarted: int = 0  # cursors lost (deleted object) and windows restarted


def _created(obj: dict[str, Any]) -> int:
    value = obj.get("created")
    if not isinstance(value, int):
        raise StripeAPIError(f"listed object {obj.get('id')!r} has no integer `created`")
    return value


def _split(rest: Window, span: int, idle: int, *, slack: bool = False) -> list[Window]:
    """Cut `rest` (which holds the cursor) into a continuation and up to
    `idle` fresh windows below it, one for each idle worker.

    `slack`: few workers are idle (under a quarter), the others still keep
    the limiter busy; only a window with many pages left is worth cutting,
    since every cut costs a request (a last, partial page) and an idle
    worker costs nothing while the limiter is the bottleneck. At the end of
    a listing more workers fall idle and the last long windows are shared.

    At the density the last page showed (100 objects in `span` seconds), a
    part is worth a request of its own only if it holds at least
    `_MIN_PART_PAGES` pages: a window about to end is left to finish. The
    continuation keeps about `_CHUNK_PAGES` pages' worth of seconds, fresh
    windows below it double in size (16, 16, 32, 64... pages' worth) and the
    lowest takes everything left. Doubling, not equal parts: the density may
    not hold further down, and where it does not, few windows are asked in
    vain; where it does, the large windows split in their turn. A range too
    short for that is shared evenly."""
    assert rest.hi is not None
    top = rest.hi - 1  # the cursor's second: only the continuation may hold it
    below = top - rest.lo  # whole seconds under the cursor's second
    pages_below = below / max(1, span)
    if slack and pages_below < 2 * _CHUNK_PAGES:
        return [rest]
    parts = min(idle + 1, below + 1, int(pages_below // _MIN_PART_PAGES))
    if parts < 2:
        return [rest]
    base = max(1, span) * _CHUNK_PAGES
    if base * parts > below:
        sizes = [max(1, below // parts)] * (parts - 1)
    else:  # the cuts stop at rest.lo: the lowest window takes what is left
        sizes = [base, *(base << i for i in range(parts - 2))]
    cuts: list[int] = []
    edge = top
    for size in sizes:
        edge -= size
        if edge <= rest.lo:
            break
        cuts.append(edge)
    if not cuts:
        return [rest]
    out = [Window(cuts[0], rest.hi, rest.cursor, rest.tail_second, rest.tail_ids)]
    bounds = [*cuts, rest.lo]
    out.extend(Window(low, high) for high, low in pairwise(bounds))
    return out


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
) -> Iterator[list[dict[str, Any]]]:
    """Every object with created >= lo, page by page (in no global order).

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
        try:
            for page in _scheduled(fetch, lo=lo, upper=upper, concurrency=concurrency,
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


def _scheduled(
    fetch: FetchPage,
    *,
    lo: int,
    upper: int,
    concurrency: int,
    stats: ListingStats | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[dict[str, Any]]]:
    """The schedule itself (see list_windows): pages as they complete.

    Objects of one second arrive in Stripe's order, one window after another.
    The first request, `[upper, +inf)` alone, is a probe: a server that
    ignores `created` (some test servers do) answers it with older objects,
    one that refuses it answers an error; either way the listing goes on as
    one sequential listing without `created` (same set, no concurrency).
    """
    stats = stats if stats is not None else ListingStats()
    concurrency = max(1, concurrency)
    first = Window(max(lo, upper), None)
    probe: Window | None = first
    pending: deque[Window] = deque([first])
    final_done = False
    full_pages = 0  # pages that said has_more, in every window
    newest_seen: set[str] = set()  # ids returned by open-ended windows (created >= upper)
    running: dict[cf.Future[tuple[list[dict[str, Any]], bool]], Window] = {}
    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="stripectl-list")
    stats.windows = 1
    try:
        while True:
            while pending and len(running) < concurrency:
                w = pending.popleft()
                # A sequential listing keeps only a real lower bound (events' --since).
                gte = (w.lo or None) if w.sequential else w.lo
                if w.delay:
                    # A retry's backoff is spent on its worker, not here.
                    running[pool.submit(_later, sleep, w.delay, fetch, gte, w.hi, w.cursor)] = w
                    w.delay = 0.0
                else:
                    running[pool.submit(fetch, gte, w.hi, w.cursor)] = w
                stats.requests += 1
            if not running:
                if final_done:
                    return
                # One trailing listing for whatever was created meanwhile.
                pending.append(Window(max(lo, upper), None))
                stats.windows += 1
                final_done = True
                continue
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                w = running.pop(fut)
                try:
                    data, has_more = fut.result()
                except (StripeAPIError, NetworkError) as exc:
                    if w is probe and _refuses_created(exc):
                        # `created` refused: one sequential listing instead.
                        probe, final_done = None, True
                        pending.append(Window(lo, None, sequential=True))
                        continue
                    retry = _after_failure(w, exc, stats)
                    probe = retry if w is probe else probe
                    pending.appendleft(retry)
                    continue
                if w.hi is None:
                    data = [o for o in data if o.get("id") not in newest_seen]
                if w is probe:
                    probe = None
                    if any(_created(o) < upper for o in data):
                        # `created` ignored: this page starts one sequential listing.
                        w.lo, w.sequential, final_done = lo, True, True
                    elif upper > lo:
                        pending.append(Window(lo, upper))
                        stats.windows += 1
                page, nxt = _advance(w, data, has_more)
                full_pages += bool(has_more)
                if w.hi is None:
                    newest_seen.update(str(o.get("id")) for o in page if _created(o) >= upper)
                if nxt is not None:
                    # Slow start: new windows grow with the full pages seen so
                    # far (2, 4, 8... in flight after 1, 2, 4 round trips), so a
                    # small account is not asked for many empty windows.
                    idle = concurrency - len(running) - len(pending)
                    span = _created(data[0]) - _created(data[-1]) if data else 1
                    parts = (_split(nxt, span, min(idle, 2 * full_pages),
                                    slack=idle * 4 < concurrency)
                             if nxt.hi is not None else [nxt])
                    if len(parts) > 1:
                        stats.splits += 1
                        stats.windows += len(parts) - 1
                    pending.extend(parts)
                if page:
                    yield page
    finally:
        for fut in running:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def _refuses_created(exc: StripeAPIError | NetworkError) -> bool:
    """The probe's error says the server cannot filter on `created`: a 400
    naming it, or a 5xx after the SDK's retries (localstripe, for one,
    fails on the parameter). Anything else is a real error."""
    if not isinstance(exc, StripeAPIError) or exc.http_status is None:
        return False
    return exc.http_status >= 500 or (exc.http_status == 400 and "created" in str(exc))


def _after_failure(w: Window, exc: StripeAPIError | NetworkError, stats: ListingStats) -> Window:
    missing = isinstance(exc, StripeAPIError) and exc.code == "resource_missing"
    if missing and w.cursor is not None and w.tail_second is not None:
        # The cursor object is gone (deleted while we listed): restart at its
        # second, without a cursor; ids already returned there are skipped.
        stats.restarted += 1
        hi = w.tail_second + 1 if w.hi is None else min(w.hi, w.tail_second + 1)
        return Window(w.lo, hi, None, w.tail_second, w.tail_ids, w.failures,
                      sequential=w.sequential)
    w.failures += 1
    transient = isinstance(exc, NetworkError) or (
        exc.http_status is not None and (exc.http_status >= 500 or exc.http_status == 409)
    )
    if w.failures >= PAGE_ATTEMPTS or not transient:
        # A request Stripe refuses, or an answer that makes no sense, is not
        # going to pass on a retry; a 429 here is past the HTTP client's own
        # backoff (gateway/pacing.py) or one Stripe said not to retry.
        raise exc
    stats.resumed += 1
    w.delay = min(8.0, 0.5 * 2 ** (w.failures - 1))
    return w


def _later(
    sleep: Callable[[float], None], delay: float, fetch: FetchPage,
    gte: int | None, lt: int | None, after: str | None,
) -> tuple[list[dict[str, Any]], bool]:
    sleep(delay)
    return fetch(gte, lt, after)


def _advance(
    w: Window, data: list[dict[str, Any]], has_more: bool
) -> tuple[list[dict[str, Any]], Window | None]:
    """The new objects of a fetched page, and the window's rest (None: done)."""
    page = data
    if w.tail_second is not None and w.tail_ids:
        page = [o for o in data if not (_created(o) == w.tail_second and o.get("id") in w.tail_ids)]
    if not data or not has_more:
        return page, None
    last = data[-1]
    oldest = _created(last)
    ids = {str(o.get("id")) for o in data if _created(o) == oldest}
    tail = (w.tail_ids | ids) if oldest == w.tail_second else ids
    # A restarted window whose page held only objects returned before goes on
    # from the last of them like any other: it exists, it was just listed.
    # The trailing window keeps its open end (objects newer than its cursor are
    # behind it, as in any sequential listing) and is never split.
    hi = None if w.hi is None else min(w.hi, oldest + 1)
    rest = Window(w.lo, hi, str(last.get("id")), oldest, tail, sequential=w.sequential)
    return page, rest
