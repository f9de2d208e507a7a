"""The schedule of a windowed listing: which windows to ask, when to split
them, and what a failed page does (the design: gateway/windows.py).

All of it runs on one thread (list_windows' producer); worker threads only
fetch.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import deque
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

from stripectl.errors import NetworkError, StripeAPIError
from stripectl.gateway.windows import FetchPage, ListingStats, Page, Window

PAGE_ATTEMPTS = 4  # tries per page at this level, on top of the SDK's retries
CHUNK_PAGES = 16  # a split's continuation keeps about this many pages of the rest
MIN_PART_PAGES = 4  # no window of its own for less than this (at the last page's density)
GROWTH = 2  # new windows per full page seen so far (slow start)


def _split(
    rest: Window, span: int, idle: int, *, slack: bool = False, endgame: bool = False
) -> list[Window]:
    """Cut `rest` (which holds the cursor) into a continuation and up to
    `idle` fresh windows below it, one for each idle worker.

    `slack`: few workers are idle (under a quarter), the others still keep
    the limiter busy; only a window with many pages left is worth cutting,
    since every cut costs a request (a last, partial page) and an idle
    worker costs nothing while the limiter is the bottleneck. At the end of
    a listing more workers fall idle and the last long windows are shared.

    `endgame`: most workers are idle after the listing had them all busy:
    the limiter has room, and a window with a few pages left would page them
    one round trip after another while the rest of the listing is done, so
    a part of one page is worth its request.

    At the density the last page showed (100 objects in `span` seconds), a
    part is worth a request of its own only if it holds at least
    `MIN_PART_PAGES` pages: a window about to end is left to finish. The
    continuation keeps about `CHUNK_PAGES` pages' worth of seconds, fresh
    windows below it double in size (16, 16, 32, 64... pages' worth) and the
    lowest takes everything left. Doubling, not equal parts: the density may
    not hold further down, and where it does not, few windows are asked in
    vain; where it does, the large windows split in their turn. A range too
    short for that is shared evenly."""
    assert rest.hi is not None
    top = rest.hi - 1  # the cursor's second: only the continuation may hold it
    below = top - rest.lo  # whole seconds under the cursor's second
    pages_below = below / max(1, span)
    if slack and pages_below < 2 * CHUNK_PAGES:
        return [rest]
    min_part = 1 if endgame else MIN_PART_PAGES
    parts = min(idle + 1, below + 1, int(pages_below // min_part))
    if parts < 2:
        return [rest]
    base = max(1, span) * CHUNK_PAGES
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


def scheduled(
    fetch: FetchPage,
    *,
    lo: int,
    upper: int,
    concurrency: int,
    stats: ListingStats | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[Any]]:
    """The schedule itself (see list_windows): pages as they complete.

    Objects of one second arrive in Stripe's order, one window after another.
    The first request, `[upper, +inf)`, is also a probe: a server that
    ignores `created` (some test servers do) answers it with older objects,
    one that refuses it answers an error; either way the listing goes on as
    one sequential listing without `created` (same set, no concurrency).
    `[lo, upper)` is asked at the same time (a round trip sooner than after
    the probe), its answer held until the probe's, and dropped if the
    listing turns sequential.
    """
    run = _Schedule(fetch, lo=lo, upper=upper, concurrency=max(1, concurrency),
                    stats=stats if stats is not None else ListingStats(), sleep=sleep)
    try:
        yield from run.pages()
    finally:
        run.stop()


class _Schedule:
    def __init__(self, fetch: FetchPage, *, lo: int, upper: int, concurrency: int,
                 stats: ListingStats, sleep: Callable[[float], None]) -> None:
        self.fetch, self.lo, self.upper, self.sleep = fetch, lo, upper, sleep
        self.concurrency, self.stats = concurrency, stats
        self.probe: Window | None = Window(max(lo, upper), None)
        self.pending: deque[Window] = deque([self.probe])
        # [lo, upper), asked with the probe; its answer waits for the probe's.
        self.first: Window | None = Window(lo, upper) if upper > lo else None
        self.held: list[tuple[cf.Future[Page], Window]] = []
        if self.first is not None:
            self.pending.append(self.first)
        stats.windows = len(self.pending)
        self.final_done = False
        self.full_pages = 0  # pages that said has_more, in every window
        self.newest_seen: set[str] = set()  # ids returned by open-ended windows (created >= upper)
        self.running: dict[cf.Future[Page], Window] = {}
        self.peak = 0  # most requests in flight at once so far
        self.pool = cf.ThreadPoolExecutor(max_workers=concurrency,
                                          thread_name_prefix="stripectl-list")

    def stop(self) -> None:
        for fut in self.running:
            fut.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self) -> None:
        while self.pending and len(self.running) < self.concurrency:
            w = self.pending.popleft()
            # A sequential listing keeps only a real lower bound (events' --since).
            gte = (w.lo or None) if w.sequential else w.lo
            if w.delay:
                # A retry's backoff is spent on its worker, not here.
                fut = self.pool.submit(_later, self.sleep, w.delay, self.fetch, gte, w.hi,
                                       w.cursor)
                w.delay = 0.0
            else:
                fut = self.pool.submit(self.fetch, gte, w.hi, w.cursor)
            self.running[fut] = w
            self.stats.requests += 1
        self.peak = max(self.peak, len(self.running))

    def _trailing_due(self) -> bool:
        """Time for the one trailing listing of whatever was created meanwhile:
        the probe's chain is done and nothing else is left, or the last
        windows of a listing that had every worker busy are in flight (then
        it runs beside them, not a round trip after them)."""
        if self.final_done or self.probe is not None or self.pending:
            return False
        if not self.running:
            return True
        if any(w.hi is None for w in self.running.values()):
            return False
        return self.peak * 2 >= self.concurrency and len(self.running) * 4 <= self.concurrency

    def pages(self) -> Iterator[list[Any]]:
        while True:
            self._submit()
            if self._trailing_due():
                self.pending.append(Window(max(self.lo, self.upper), None))
                self.stats.windows += 1
                self.final_done = True
                continue
            if not self.running:
                return
            finished, _ = cf.wait(self.running, return_when=cf.FIRST_COMPLETED)
            done = deque((fut, self.running.pop(fut)) for fut in finished)
            while done:
                fut, w = done.popleft()
                if w.dropped:  # answered in the same wait as the probe that dropped it
                    continue
                if self.probe is not None and w is self.first:
                    self.held.append((fut, w))  # until the probe has answered
                    continue
                page = self._answered(fut, w)
                if self.probe is None and self.held:
                    done.extend(self.held)
                    self.held.clear()
                if page:
                    yield page

    def _answered(self, fut: cf.Future[Page], w: Window) -> list[Any]:
        """The new items of one finished request (the schedule updated)."""
        try:
            answer = fut.result()
        except (StripeAPIError, NetworkError) as exc:
            if w is self.probe and _refuses_created(exc):
                # `created` refused: one sequential listing instead.
                self._sequential()
                self.pending.append(Window(self.lo, None, sequential=True))
                return []
            retry = _after_failure(w, exc, self.stats)
            self.probe = retry if w is self.probe else self.probe
            self.pending.appendleft(retry)
            return []
        if w.hi is None and self.newest_seen:
            newest_seen = self.newest_seen
            answer = answer.without(lambda key: key[0] in newest_seen)
        if w is self.probe:
            if any(created < self.upper for _, created in answer.keys):
                # `created` ignored: this page starts one sequential listing.
                self._sequential()
                w.lo, w.sequential = self.lo, True
            self.probe = None
        page, nxt = _advance(w, answer)
        self.full_pages += bool(answer.has_more)
        if w.hi is None:
            self.newest_seen.update(oid for oid, created in page.keys if created >= self.upper)
        if nxt is not None:
            self.pending.extend(self._parts(nxt, answer))
        return page.items

    def _sequential(self) -> None:
        """No windows after all: the probe's `[lo, upper)` twin is dropped
        wherever it is (waiting, in flight or answered)."""
        self.probe, self.final_done = None, True
        twin, self.first = self.first, None
        if twin is None:
            return
        twin.dropped = True
        self.held.clear()
        self.pending = deque(w for w in self.pending if w is not twin)
        for fut, w in list(self.running.items()):
            if w is twin:
                fut.cancel()
                del self.running[fut]
        self.stats.windows -= 1

    def _parts(self, nxt: Window, answer: Page) -> list[Window]:
        """The window's rest, split for idle workers."""
        if nxt.hi is None:
            return [nxt]
        # Slow start: new windows grow with the full pages seen so far (3,
        # ~25, 32 in flight after 1, 2, 3 round trips), so a small account is
        # not asked for many empty windows.
        idle = self.concurrency - len(self.running) - len(self.pending)
        keys = answer.keys
        span = keys[0][1] - keys[-1][1] if keys else 1
        parts = _split(nxt, span, min(idle, GROWTH * self.full_pages),
                       slack=idle * 4 < self.concurrency,
                       endgame=self.peak * 2 >= self.concurrency and idle * 2 >= self.concurrency)
        if len(parts) > 1:
            self.stats.splits += 1
            self.stats.windows += len(parts) - 1
        return parts


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
) -> Page:
    sleep(delay)
    return fetch(gte, lt, after)


def _advance(w: Window, answer: Page) -> tuple[Page, Window | None]:
    """The new objects of a fetched page, and the window's rest (None: done)."""
    page = answer
    if w.tail_second is not None and w.tail_ids:
        tail_second, tail_ids = w.tail_second, w.tail_ids
        page = answer.without(lambda key: key[1] == tail_second and key[0] in tail_ids)
    keys = answer.keys
    if not keys or not answer.has_more:
        return page, None
    last_id, oldest = keys[-1]
    ids = {oid for oid, created in keys if created == oldest}
    tail = (w.tail_ids | ids) if oldest == w.tail_second else ids
    # A restarted window whose page held only objects returned before goes on
    # from the last of them like any other: it exists, it was just listed.
    # The trailing window keeps its open end (objects newer than its cursor are
    # behind it, as in any sequential listing) and is never split.
    hi = None if w.hi is None else min(w.hi, oldest + 1)
    rest = Window(w.lo, hi, last_id, oldest, tail, sequential=w.sequential)
    return page, rest
