"""Listing pages digested in helper processes (gateway/page_pool.py), the probe
asked together with the first window (gateway/windows.py), and stripe imported
without its async HTTP clients (gateway/sdk.py). Through stripe-python's HTTP
stack against the in-process fake of tests/test_listing.py on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from stripectl.gateway.page_pool import PageDigester, digest
from stripectl.gateway.subscriptions import list_subscription_pages
from stripectl.gateway.window_schedule import _Schedule
from stripectl.gateway.windows import ListingStats, Page, object_page
from stripectl.webhooks.snapshots import subscription_row
from tests import factories as f
from tests.fakes.base import Request, Response
from tests.fakes.subscriptions import FakeSubscriptions
from tests.test_listing import UPPER, HookedSubscriptions, gw, sequential, sub

ROOT = Path(__file__).resolve().parent.parent
HELPER = "stripectl.gateway.page_pool"


def helper_pids() -> set[int]:
    """This process's children that are page helpers (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == os.getpid() and HELPER.encode() in cmdline:
            found.add(int(entry.name))
    return found


def wait_for(pred: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def refuse_for(sub_row: dict[str, Any]) -> dict[str, Any]:
    """A transform that fails on one subscription (module level: a helper imports it)."""
    if sub_row["id"] == "sub_l000123":
        raise ValueError("no row for sub_l000123")
    return subscription_row(sub_row)


def rows(gateway: Any, stats: ListingStats, *, helpers: int | None = 1,
         transform: Any = subscription_row) -> list[dict[str, Any]]:
    pages = list_subscription_pages(gateway, upper=UPPER, transform=transform, stats=stats,
                                    helpers=helpers)
    return [r for page in pages for r in page]


@pytest.fixture
def big(fake: tuple[HookedSubscriptions, str]) -> tuple[HookedSubscriptions, str]:
    app, url = fake
    app.fill([f.T0 + n * 7 for n in range(3000)])  # 30 pages
    return app, url


@pytest.fixture
def fake() -> Iterator[tuple[HookedSubscriptions, str]]:
    from tests.fakes.base import serve

    app = HookedSubscriptions()
    with serve(app) as url:
        yield app, url


def test_a_large_listing_is_digested_in_a_helper_with_the_same_rows(
    big: tuple[HookedSubscriptions, str]
) -> None:
    app, url = big
    stats = ListingStats()
    # Slow enough that the helper is ready long before the last page.
    app.hook = lambda n, req: time.sleep(0.05) and None
    got = rows(gw(url, rps=200, concurrency=4), stats)
    assert stats.helper_failed is None
    assert stats.helper_pages > 0  # pages went through a helper ...
    assert stats.helper_pages < stats.requests  # ... after the first ones were parsed here
    expected = {s["id"]: subscription_row(s) for s in app.subs.values()}
    assert len(got) == len(expected)
    assert {r["id"]: r for r in got} == expected
    assert helper_pids() == set()  # stopped with the listing


def test_a_small_listing_starts_no_helper(fake: tuple[HookedSubscriptions, str]) -> None:
    app, url = fake
    app.fill([f.T0 + n for n in range(450)])  # 5 pages
    seen: list[set[int]] = []
    app.hook = lambda n, req: seen.append(helper_pids()) and None
    stats = ListingStats()
    assert len(rows(gw(url), stats)) == 450
    assert stats.helper_pages == 0 and all(not pids for pids in seen)


def test_a_helper_killed_mid_listing_loses_nothing(big: tuple[HookedSubscriptions, str]) -> None:
    app, url = big
    killed: list[int] = []

    def kill_helper(n: int, req: Request) -> None:
        time.sleep(0.05)
        pids = helper_pids()
        if n >= 20 and pids and not killed:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    app.hook = kill_helper
    stats = ListingStats()
    got = rows(gw(url, rps=200, concurrency=4), stats)
    assert killed, "the helper was never seen running"
    assert sorted(r["id"] for r in got) == sorted(app.subs)
    assert stats.helper_failed is not None and "stopped" in stats.helper_failed
    assert helper_pids() == set()


def test_sync_says_when_its_helper_died_and_mirrors_everything(
    big: tuple[HookedSubscriptions, str], tmp_path: Path
) -> None:
    import json

    from tests.drift_helpers import cli

    app, url = big
    killed: list[int] = []

    def kill_helper(n: int, req: Request) -> None:
        time.sleep(0.03)
        if n >= 20 and not killed:
            for pid in helper_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    app.hook = kill_helper
    result = cli(url, tmp_path / "m.db", "sync", "--json", "--max-rps", "200")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert killed and report["summary"]["created"] == 3000
    assert any("helper process stopped" in n and "nothing was lost" in n for n in report["notes"])
    assert helper_pids() == set()


def test_a_transform_that_raises_in_a_helper_raises_here(
    big: tuple[HookedSubscriptions, str]
) -> None:
    app, url = big
    app.hook = lambda n, req: time.sleep(0.05) and None
    with pytest.raises(ValueError, match="no row for sub_l000123"):
        rows(gw(url, rps=200, concurrency=2), ListingStats(), transform=refuse_for)
    wait_for(lambda: helper_pids() == set())


def test_the_digester_answers_like_digest_and_stops_its_helper() -> None:
    body = orjson.dumps({"object": "list", "has_more": True, "data": [
        sub(n, f.T0 + n) for n in range(5)
    ]})
    digester = PageDigester(subscription_row, helpers=1, start_after=0)
    try:
        wait_for(lambda: (digester(body), digester.in_helper)[1] > 0)
        assert digester(body) == digest(body, subscription_row)
        assert digester(b"not json") == digest(b"not json", subscription_row)
        assert isinstance(digester(b'{"data": 3}'), str)  # not a list page: a reason
        pids = helper_pids()
        assert len(pids) == 1
    finally:
        digester.close()
    assert helper_pids() == set()
    assert digester.helper_failed is None


def test_a_lambda_transform_never_leaves_the_process() -> None:
    digester = PageDigester(lambda s: s["id"], helpers=1, start_after=0)
    body = orjson.dumps({"data": [sub(1, f.T0)], "has_more": False})
    for _ in range(3):
        assert digester(body) == ([("sub_l000001", f.T0)], ["sub_l000001"], False)
    digester.close()
    assert digester.in_helper == 0 and helper_pids() == set()


class IgnoresCreated(HookedSubscriptions):
    """A server that ignores `created` (as some test servers do); the answer
    to the request whose `created` is `slow` waits 0.3 s."""

    def __init__(self, slow: dict[str, str] | None) -> None:
        super().__init__()
        self.slow = slow

    def route(self, req: Request) -> Response:
        if self.slow is not None and req.query.get("created") == self.slow:
            time.sleep(0.3)

        query = {k: v for k, v in req.query.items() if k != "created"}
        return super().route(dataclasses.replace(req, query=query))


@pytest.mark.parametrize(("concurrency", "slow"), [
    (1, None), (2, None), (6, None),
    (4, {"gte": str(UPPER)}),  # the probe answers last: the window beside it is held, then dropped
    (4, {"gte": "0", "lt": str(UPPER)}),  # the window beside the probe answers last: dropped
])
def test_a_server_ignoring_created_is_listed_once_sequentially(
    concurrency: int, slow: dict[str, str] | None
) -> None:
    from tests.fakes.base import serve

    app = IgnoresCreated(slow)
    with serve(app) as url:
        app.fill([f.T0 + n * 60 for n in range(450)])
        stats = ListingStats()
        got = [r["id"] for r in rows(gw(url, concurrency=concurrency), stats, helpers=0)]
        assert len(got) == len(set(got)) == 450
        assert sorted(got) == sorted(sequential(gw(url)))
        # The window asked beside the probe was dropped, not listed.
        assert stats.windows == 1


class _Inline:
    """An executor that runs each request as it is submitted: the schedule's
    next wait sees every request of a round done, in the set's order."""

    def submit(self, fn: Any, *args: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        fut.set_result(fn(*args))
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def test_the_window_beside_the_probe_is_dropped_even_when_both_answer_at_once() -> None:
    """A server that ignores `created`: the probe and the window beside it
    answer in the same wait, in either order. Nothing may be listed twice."""
    objs = sorted((sub(n, f.T0 + n) for n in range(250)), key=lambda o: -o["created"])

    def fetch(gte: int | None, lt: int | None, after: str | None) -> Page:
        start = 0 if after is None else next(i for i, o in enumerate(objs) if o["id"] == after) + 1
        return object_page(objs[start:start + 100], start + 100 < len(objs))

    for _ in range(60):  # the futures' set order varies between runs
        run = _Schedule(fetch, lo=0, upper=UPPER, concurrency=2, stats=ListingStats(),
                        sleep=time.sleep)
        run.pool.shutdown()
        run.pool = _Inline()  # type: ignore[assignment]
        first = run.first
        got = []
        for page in run.pages():
            got.extend(o["id"] for o in page)
        assert len(got) == 250 and len(set(got)) == 250
        assert first is not None and first.dropped
    assert run.stats.windows == 1


def test_created_refused_by_the_server_drops_the_first_window() -> None:
    from tests.fakes.base import error, serve

    class Refuses(HookedSubscriptions):
        def route(self, req: Request) -> Response:
            if req.method == "GET" and "created" in req.query:
                return error(400, "Received unknown parameter: created")
            return FakeSubscriptions.route(self, req)

    app = Refuses()
    with serve(app) as url:
        app.fill([f.T0 + n * 60 for n in range(250)])
        got = [r["id"] for r in rows(gw(url, concurrency=4), ListingStats(), helpers=0)]
        assert sorted(got) == sorted(s for s in app.subs)


def test_stripe_is_imported_without_the_async_http_clients() -> None:
    code = (
        "import sys; import stripectl.gateway.client, stripe\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'\n"
        "import stripe._http_client as h\n"
        "assert h._default_async_client.__name__ == 'NoImportFoundAsyncClient'\n"
        "import aiohttp  # still importable: the receiver's\n"
        "import stripectl.gateway.windows, stripectl.gateway.page_pool\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    light = subprocess.run(
        [sys.executable, "-c", "import sys, stripectl.gateway.windows, stripectl.gateway.page_pool, "
         "stripectl.gateway.stripe_cli_config; print('stripe' in sys.modules)"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )
    assert light.stdout.strip() == "False", light.stderr
