"""Windowed, paced listing (gateway/windows.py, gateway/pacing.py) through stripe-python's
HTTP stack against an in-process fake on 127.0.0.1: the same set as one sequential
listing, whatever happens while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stripectl.errors import StripeAPIError
from stripectl.gateway.client import Gateway, GatewaySettings, connect
from stripectl.gateway.subscriptions import iter_subscription_pages, list_subscription_pages
from stripectl.gateway.windows import ListingStats
from tests import factories as f
from tests.fakes.base import Request, Response, error, serve
from tests.fakes.subscriptions import FakeSubscriptions

UPPER = f.T0 + 400 * f.DAY  # "now": the listing's start


def sub(n: int, created: int) -> dict[str, Any]:
    return f.subscription(id=f"sub_l{n:06d}", customer=f"cus_l{n:06d}", created=created)


class HookedSubscriptions(FakeSubscriptions):
    """Calls `hook(n, req)` before answering the n-th list request (1-based);
    the hook may change the data or return a Response to send instead."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Callable[[int, Request], Response | None] | None = None
        self.arrivals: list[float] = []

    def route(self, req: Request) -> Response:
        if req.method == "GET" and req.path == "/v1/subscriptions":
            with self.lock:
                self.arrivals.append(time.monotonic())
                n = len(self.arrivals)
            if self.hook is not None:
                answer = self.hook(n, req)
                if answer is not None:
                    return answer
        return super().route(req)

    def fill(self, created: list[int]) -> None:
        with self.lock:
            self.subs.clear()
            self.arrivals.clear()
        for n, c in enumerate(created):
            self.put(sub(n, c))


@pytest.fixture
def fake() -> Iterator[tuple[HookedSubscriptions, str]]:
    app = HookedSubscriptions()
    with serve(app) as url:
        yield app, url


def gw(url: str, *, rps: float = 1000.0, concurrency: int = 6, retries: int = 0) -> Gateway:
    return connect(GatewaySettings(
        api_key="sk_test_stripectl_fake_0000", api_base=url, max_rps=rps,
        concurrency=concurrency, max_network_retries=retries,
    ))


def listed(gateway: Gateway, stats: ListingStats | None = None) -> list[str]:
    pages = list_subscription_pages(gateway, upper=UPPER, transform=dict, stats=stats)
    return [s["id"] for page in pages for s in page]


def sequential(gateway: Gateway) -> list[str]:
    return [s["id"] for page in iter_subscription_pages(gateway) for s in page]


def test_skewed_account_spreads_over_windows(fake: tuple[HookedSubscriptions, str]) -> None:
    app, url = fake
    # 10% spread over a year, 90% in the last day, some in the same second.
    times = [f.T0 + n * 3 * f.DAY for n in range(120)]
    times += [UPPER - f.DAY + n * 80 for n in range(1000)] + [UPPER - 5] * 130
    app.fill(times)
    stats = ListingStats()
    ids = listed(gw(url), stats)
    queries = [r.query for r in app.list_requests()]
    assert len(ids) == len(set(ids)) == len(times)
    assert sorted(ids) == sorted(sequential(gw(url)))
    assert stats.splits >= 2 and stats.windows >= 3
    # Each window costs at most one request beyond its full pages (its last,
    # partial one), and a small skewed listing is not cut into slivers.
    pages = len(times) // 100 + 1
    assert stats.requests == len(queries) <= pages + stats.windows
    assert stats.windows <= 2 * pages
    # Every window asked for whole seconds; the probe and the window below it
    # were asked first, together (in either order).
    assert all("gte" in q["created"] for q in queries)
    first_two = sorted(sorted(q["created"].items()) for q in queries[:2])
    assert first_two == [[("gte", "0"), ("lt", str(UPPER))], [("gte", str(UPPER))]]


def test_objects_created_during_the_listing_are_listed_once(
    fake: tuple[HookedSubscriptions, str]
) -> None:
    app, url = fake
    app.fill([f.T0 + n * 60 for n in range(700)])
    added: list[str] = []

    def create_some(n: int, req: Request) -> None:
        if n in (3, 5, 7):  # new subscriptions while windows are being paged
            for k in range(40):
                s = sub(10_000 + 100 * n + k, UPPER + n)  # created after the listing began
                app.put(s)
                added.append(s["id"])
        return None

    app.hook = create_some
    ids = listed(gw(url))
    assert len(ids) == len(set(ids))  # nothing twice
    assert set(ids) == {s for s in app.subs}  # nothing missed, new ones included
    assert set(added) <= set(ids)


def test_deletes_during_the_listing_do_not_break_it(fake: tuple[HookedSubscriptions, str]) -> None:
    app, url = fake
    app.fill([f.T0 + n * 30 for n in range(900)])
    deleted: set[str] = set()

    def delete_cursors(n: int, req: Request) -> None:
        # Delete the very object this request pages after: its cursor is gone.
        cursor = req.query.get("starting_after")
        if cursor and len(deleted) < 3 and cursor in app.subs:
            app.remove(cursor)
            deleted.add(cursor)
            # ... and one more that has not been listed yet.
            older = min(app.subs)
            app.remove(older)
            deleted.add(older)
        return None

    app.hook = delete_cursors
    stats = ListingStats()
    ids = listed(gw(url), stats)
    assert deleted and stats.restarted >= 1
    assert len(ids) == len(set(ids))
    assert set(app.subs) <= set(ids)  # every object still there was listed
    assert set(ids) - set(app.subs) <= deleted  # anything else was deleted meanwhile


def test_a_window_whose_pages_fail_halfway_resumes_at_its_cursor(
    fake: tuple[HookedSubscriptions, str]
) -> None:
    app, url = fake
    app.fill([f.T0 + n for n in range(450)])
    failed: list[dict[str, Any]] = []

    def fail_paged(n: int, req: Request) -> Response | None:
        if req.query.get("starting_after") and len(failed) < 2:
            failed.append(req.query)
            return error(500, "An unknown error occurred", type_="api_error")
        return None

    app.hook = fail_paged
    stats = ListingStats()
    ids = listed(gw(url, concurrency=1), stats)
    assert len(failed) == 2 and stats.resumed == 2
    assert sorted(ids) == sorted(app.subs)
    # Asked again from the same cursor, not from the window's start.
    again = [r.query for r in app.list_requests()].count(failed[0])
    assert again == 3  # the failure itself, a failed retry, the one that passed


def test_a_page_that_keeps_failing_is_an_error(fake: tuple[HookedSubscriptions, str]) -> None:
    app, url = fake
    app.fill([f.T0 + n for n in range(150)])
    app.hook = lambda n, req: (
        error(500, "down", type_="api_error") if req.query.get("starting_after") else None
    )
    with pytest.raises(StripeAPIError) as caught:
        listed(gw(url, concurrency=1))
    assert caught.value.http_status == 500


def test_a_429_storm_is_waited_out(fake: tuple[HookedSubscriptions, str]) -> None:
    app, url = fake
    app.fill([f.T0 + n * 10 for n in range(500)])
    storm_until: list[float] = []

    def throttle(n: int, req: Request) -> Response | None:
        with app.lock:
            if not storm_until:
                storm_until.append(time.monotonic() + 0.6)
        if time.monotonic() < storm_until[0]:  # everything is refused for 0.6 s
            answer = error(429, "Too many requests", code="rate_limit")
            answer.headers["Retry-After"] = "1"
            return answer
        return None

    app.hook = throttle
    gateway = gw(url, rps=200)
    ids = listed(gateway)
    assert sorted(ids) == sorted(app.subs)
    assert gateway.limiter is not None and gateway.limiter.throttled >= 1
    assert gateway.limiter.rate < 200  # slowed down after the storm
    # Every request refused during the storm was sent again after Retry-After.
    refused = [t for t in app.arrivals if t < storm_until[0]]
    assert len(refused) == gateway.limiter.throttled
    after = [t for t in app.arrivals if t >= storm_until[0]]
    assert after and min(after) - min(app.arrivals) >= 1.0


def test_a_429_without_retry_after_backs_off(fake: tuple[HookedSubscriptions, str]) -> None:
    app, url = fake
    app.fill([f.T0 + n for n in range(50)])
    app.hook = lambda n, req: error(429, "slow down", code="rate_limit") if n <= 2 else None
    started = time.monotonic()
    ids = listed(gw(url, concurrency=1))
    assert sorted(ids) == sorted(app.subs)
    assert time.monotonic() - started >= 0.25 + 0.5  # jittered 0.5 s, then 1 s, at least half


def test_stripe_should_retry_false_is_not_retried(fake: tuple[HookedSubscriptions, str]) -> None:
    app, url = fake
    app.fill([f.T0 + n for n in range(50)])

    def refuse(n: int, req: Request) -> Response:
        answer = error(429, "lock timeout", code="lock_timeout")
        answer.headers["Stripe-Should-Retry"] = "false"
        return answer

    app.hook = refuse
    gateway = gw(url, concurrency=1)
    with pytest.raises(StripeAPIError) as caught:
        listed(gateway)
    assert caught.value.http_status == 429
    assert gateway.limiter is not None and gateway.limiter.throttled == 0


def test_the_limiter_is_never_exceeded(fake: tuple[HookedSubscriptions, str]) -> None:
    app, url = fake
    app.fill([f.T0 + n * 5 for n in range(2500)])
    rate = 10
    ids = listed(gw(url, rps=rate, concurrency=8))
    assert sorted(ids) == sorted(app.subs)
    arrivals = sorted(app.arrivals)
    assert len(arrivals) > 2 * rate  # long enough to matter
    # Requests arriving in any 1-second window, counted on the server.
    most = max(sum(1 for t in arrivals[i:] if t < start + 1.0) for i, start in enumerate(arrivals))
    assert most <= rate


def test_limiter_never_starts_more_than_rate_in_any_second() -> None:
    from stripectl.gateway.pacing import RateLimiter

    now = [0.0]
    starts: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(25, clock=lambda: now[0], sleep=sleep)
    for n in range(200):
        limiter.acquire()
        starts.append(now[0])
        if n == 120:
            limiter.throttled_for(2.0)  # a 429: everyone waits, then a slower pace
    # Even seen up to 50 ms late or early by a server, no 1 s window holds 26.
    for i, s in enumerate(starts):
        assert sum(1 for t in starts[i:] if t < s + 1.03) <= 25
    assert starts[121] - starts[120] >= 2.0
    assert limiter.rate == pytest.approx(25 * 0.75)
    assert limiter.throttled == 1


def test_limiter_is_shared_by_threads() -> None:
    from stripectl.gateway.pacing import BURST, RateLimiter

    # A shared fake clock: safe, since one thread at a time waits for a slot.
    now = [0.0]
    starts: list[float] = []
    record = threading.Lock()

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(20, clock=lambda: now[0], sleep=sleep)

    def work() -> None:
        for _ in range(25):
            limiter.acquire()
            with record:
                starts.append(now[0])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert limiter.acquired == len(starts) == 200
    starts.sort()
    for i, s in enumerate(starts):
        assert sum(1 for t in starts[i:] if t < s + 1.03) <= 20
        # No burst: a fifth of a second holds its share (4) and BURST more.
        assert sum(1 for t in starts[i:] if t < s + 0.2) <= 4 + BURST


def test_limiter_catches_up_after_late_wake_ups() -> None:
    """A thread woken 8 ms late (the GIL, a busy machine) must not stretch
    every interval after it: the pace over 10 s stays at the limit."""
    from stripectl.gateway.pacing import RateLimiter

    now = [0.0]
    starts: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds + 0.008

    limiter = RateLimiter(100, clock=lambda: now[0], sleep=sleep)
    while now[0] < 10.4:
        limiter.acquire()
        starts.append(now[0])
    for i, s in enumerate(starts):
        assert sum(1 for t in starts[i:] if t < s + 1.03) <= 100
    # A fixed spacing from each wake-up would start 100 / (1.04 + 0.8) = 54 a second.
    assert sum(1 for t in starts if t < 10.4) >= 950


@st.composite
def creation_times(draw: st.DrawFn) -> list[int]:
    """Clusters of creation times: single seconds with many objects, bursts, sparse years."""
    times: list[int] = []
    for _ in range(draw(st.integers(1, 4))):
        centre = draw(st.integers(f.T0, UPPER - 1))
        spread = draw(st.sampled_from([0, 1, 5, 300, 86400, 300 * 86400]))
        count = draw(st.integers(0, 160))
        offsets = draw(st.lists(st.integers(0, spread), min_size=count, max_size=count))
        times += [min(UPPER - 1, centre + o) for o in offsets]
    return times


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(times=creation_times(), concurrency=st.integers(1, 8))
def test_parallel_listing_equals_a_sequential_one(
    fake: tuple[HookedSubscriptions, str], times: list[int], concurrency: int
) -> None:
    app, url = fake
    app.hook = None
    app.fill(times)
    gateway = gw(url, concurrency=concurrency)
    windowed = listed(gateway)
    assert len(windowed) == len(set(windowed))
    assert sorted(windowed) == sorted(sequential(gateway))
