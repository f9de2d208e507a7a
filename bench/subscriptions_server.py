"""A fake `GET /v1/subscriptions` with latency and a rate limit, for bench/ (not product code).

Serves N current-shape subscriptions (tests/factories.py, ~3 KB each, one
in five with two items) newest first, paging like Stripe (`limit`,
`starting_after`, `has_more`, `status=all`, `created[gte]` / `created[lt]`
/ `gt` / `lte`). Subscription i was created at T0 + i // per_second. Nothing
per subscription is kept but a status code and a quantity (N = 1,000,000
fits in a few MB): each object is one %-format of a template rendered once.

Every request waits `--latency` seconds (default 0.2) before it is answered,
on its own thread, so requests are served concurrently. `--rps` enforces a
limit like Stripe's: a request arriving when `rps` requests were accepted in
the last second gets a 429 (`rate_limit_error`; `Retry-After` only with
`--retry-after`). Every 429 is counted, and so is the largest number of
requests that arrived in any 1-second window.

    python bench/subscriptions_server.py N [--latency 0.2] [--rps 25] [--per-second 1]
    # prints "PORT <port>" then serves

Bench-only control routes: GET /_bench/stats -> {"requests", "throttled",
"max_in_any_second", "first_to_last_request" (seconds), "timeline" (requests in each second from the
first)}; POST /_bench/reset -> zero those; POST
/_bench/drift?every=K -> cancel every K-th subscription, bump the quantity
of every (K/2)-th one (Stripe-side drift for reconcile to find).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import threading
import time
from array import array
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import factories as f  # noqa: E402

STATUSES = ("active", "trialing", "past_due", "canceled")
_STR = ("SUB", "CUS", "STATUS", "USER")
_INT = ("QTY", "CREATED", "PE")


def _template(items: int) -> str:
    marks = {k: f"@@{k}@@" for k in (*_STR, *_INT)}
    specs = [{"price": "price_basic", "quantity": 1}, {"price": "price_pro", "quantity": 1}]
    sub = f.subscription(
        id=marks["SUB"], customer=marks["CUS"], status=marks["STATUS"],
        metadata={"user_id": marks["USER"], "plan_name": "basic"},
        items=specs[:items], created=f.T0,
    )
    sub["items"]["data"][0]["quantity"] = marks["QTY"]
    for item in sub["items"]["data"]:
        item["current_period_end"] = marks["PE"]
        item["subscription"] = marks["SUB"]
        item["id"] = "si_" + "bench" + str(len(item))
    sub["created"] = sub["start_date"] = sub["billing_cycle_anchor"] = marks["CREATED"]
    body = json.dumps(sub, separators=(",", ":")).replace("%", "%%")
    for k in _INT:
        body = body.replace(f'"@@{k}@@"', f"%({k})d")
    for k in _STR:
        body = body.replace(f"@@{k}@@", f"%({k})s")
    assert "@@" not in body
    return body


class Subscriptions:
    def __init__(self, n: int, per_second: int = 1) -> None:
        self.n = n
        self.per_second = max(1, per_second)
        self.status = bytearray(n)  # index into STATUSES
        self.quantity = array("i", [1]) * n
        self.templates = (_template(1), _template(2))

    @staticmethod
    def sid(i: int) -> str:
        return f"sub_1Bench{i:018d}"

    def created(self, i: int) -> int:
        return f.T0 + i // self.per_second

    def first_at(self, ts: int) -> int:
        """The smallest index created at or after `ts` (clamped to 0..n)."""
        return min(self.n, max(0, (ts - f.T0) * self.per_second))

    def body(self, i: int) -> str:
        return self.templates[1 if i % 5 == 0 else 0] % {
            "SUB": self.sid(i), "CUS": f"cus_Bench{i:010d}",
            "STATUS": STATUSES[self.status[i]], "USER": f"user_{i}",
            "QTY": self.quantity[i], "CREATED": self.created(i), "PE": f.T0 + i + 30 * f.DAY,
        }

    def _bounds(self, q: dict[str, list[str]]) -> tuple[int, int]:
        """Index range [low, high) the `created` filters allow."""
        low, high = 0, self.n
        for op, conv in (("gte", 0), ("gt", 1), ("lt", 0), ("lte", 1)):
            raw = q.get(f"created[{op}]", [None])[0]
            if raw is None:
                continue
            first = self.first_at(int(raw) + conv)
            if op in ("gte", "gt"):
                low = max(low, first)
            else:
                high = min(high, first)
        return low, high

    def page(self, q: dict[str, list[str]]) -> tuple[int, bytes]:
        limit = int(q.get("limit", ["10"])[0])
        if not 1 <= limit <= 100:
            return 400, b'{"error":{"type":"invalid_request_error","message":"bad limit"}}'
        status = q.get("status", [None])[0]
        after = q.get("starting_after", [None])[0]
        low, high = self._bounds(q)
        i = high - 1 if after is None else min(high, int(after.rsplit("Bench", 1)[1])) - 1
        picked: list[str] = []
        while i >= low and len(picked) < limit:  # newest (highest index) first
            current = STATUSES[self.status[i]]
            wanted = status == current or (status is None and current != "canceled")
            if status == "all" or wanted:
                picked.append(self.body(i))
            i -= 1
        # Exact for status=all (what stripectl asks); may over-report when filtering.
        has_more = "true" if i >= low and len(picked) == limit else "false"
        return 200, (
            '{"object":"list","data":[' + ",".join(picked) + '],"has_more":' + has_more
            + ',"url":"/v1/subscriptions"}'
        ).encode()

    def drift(self, every: int) -> dict[str, int]:
        canceled = bumped = 0
        for i in range(0, self.n, every):
            self.status[i] = STATUSES.index("canceled")
            canceled += 1
        for i in range(every // 2, self.n, every):
            self.quantity[i] += 1
            bumped += 1
        return {"canceled": canceled, "quantity": bumped}


class Limits:
    """Latency, the rate limit and its counters (shared by the handler threads)."""

    def __init__(self, latency: float, rps: float | None, retry_after: bool) -> None:
        self.latency, self.rps, self.retry_after = latency, rps, retry_after
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = self.throttled = self.max_in_any_second = 0
            self.first: float | None = None
            self.timeline: list[int] = []  # requests arrived in each second since the first
            self.last: float | None = None
            self.accepted: collections.deque[float] = collections.deque()
            self.arrived: collections.deque[float] = collections.deque()

    def admit(self) -> bool:
        """Count one arriving request; False when it is over the limit (429)."""
        now = time.monotonic()
        with self.lock:
            self.requests += 1
            self.first = now if self.first is None else self.first
            self.last = now
            second = int(now - self.first)
            self.timeline.extend([0] * (second + 1 - len(self.timeline)))
            self.timeline[second] += 1
            self.arrived.append(now)
            while self.arrived and self.arrived[0] <= now - 1.0:
                self.arrived.popleft()
            self.max_in_any_second = max(self.max_in_any_second, len(self.arrived))
            while self.accepted and self.accepted[0] <= now - 1.0:
                self.accepted.popleft()
            if self.rps is not None and len(self.accepted) >= self.rps:
                self.throttled += 1
                return False
            self.accepted.append(now)
            return True

    def stats(self) -> dict[str, int]:
        with self.lock:
            span = 0.0 if self.first is None or self.last is None else self.last - self.first
            return {"requests": self.requests, "throttled": self.throttled,
                    "max_in_any_second": self.max_in_any_second,
                    "first_to_last_request": round(span, 3), "timeline": self.timeline}


_TOO_MANY = (b'{"error":{"type":"invalid_request_error","code":"rate_limit",'
             b'"message":"Request rate limit exceeded."}}')


def handler(state: Subscriptions, limits: Limits) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", "req_bench")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            split = urlsplit(self.path)
            q = parse_qs(split.query)
            if split.path == "/_bench/stats":
                self._send(200, json.dumps(limits.stats()).encode())
                return
            admitted = limits.admit()
            if limits.latency:
                time.sleep(limits.latency)
            if not admitted:
                self._send(429, _TOO_MANY, {"Retry-After": "1"} if limits.retry_after else None)
            elif split.path == "/v1/subscriptions":
                self._send(*state.page(q))
            else:
                self._send(404, b'{"error":{"type":"invalid_request_error","message":"no"}}')

        def do_POST(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if split.path == "/_bench/drift":
                every = int(parse_qs(split.query).get("every", ["100"])[0])
                self._send(200, json.dumps(state.drift(every)).encode())
            elif split.path == "/_bench/reset":
                limits.reset()
                self._send(200, b"{}")
            else:
                self._send(404, b'{"error":{"type":"invalid_request_error","message":"no"}}')

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="subscriptions served")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    parser.add_argument("--rps", type=float, default=None, help="requests/s allowed (429 beyond)")
    parser.add_argument("--retry-after", action="store_true", help="send Retry-After: 1 on 429")
    parser.add_argument("--per-second", type=int, default=1, help="subscriptions per created second")
    args = parser.parse_args()
    limits = Limits(args.latency, args.rps, args.retry_after)
    server = _Server(("127.0.0.1", 0), handler(Subscriptions(args.n, args.per_second), limits))
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
