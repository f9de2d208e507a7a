"""A fast fake `GET /v1/subscriptions` for bench/reconcile.py (not product code).

Serves N current-shape subscriptions (tests/factories.py, ~3 KB each, one
in five with two items) newest first, paging like Stripe (`limit`,
`starting_after`, `has_more`, `status=all`). Nothing per subscription is kept
but a status code and a quantity: each object is one %-format of a template
rendered once, so serving is never the bottleneck being measured.

    python bench/subscriptions_server.py N      # prints "PORT <port>" then serves

Bench-only control routes: GET /_bench/stats -> {"requests": n};
POST /_bench/drift?every=K -> cancel every K-th subscription, bump the
quantity of every (K/2)-th one (Stripe-side drift for reconcile to find).
"""

from __future__ import annotations

import json
import sys
import threading
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
    def __init__(self, n: int) -> None:
        self.n = n
        self.status = bytearray(n)  # index into STATUSES
        self.quantity = array("i", [1]) * n
        self.templates = (_template(1), _template(2))
        self.requests = 0
        self.lock = threading.Lock()

    @staticmethod
    def sid(i: int) -> str:
        return f"sub_1Bench{i:018d}"

    def body(self, i: int) -> str:
        return self.templates[1 if i % 5 == 0 else 0] % {
            "SUB": self.sid(i), "CUS": f"cus_Bench{i:010d}",
            "STATUS": STATUSES[self.status[i]], "USER": f"user_{i}",
            "QTY": self.quantity[i], "CREATED": f.T0 + i, "PE": f.T0 + i + 30 * f.DAY,
        }

    def page(self, q: dict[str, list[str]]) -> tuple[int, bytes]:
        limit = int(q.get("limit", ["10"])[0])
        if not 1 <= limit <= 100:
            return 400, b'{"error":{"type":"invalid_request_error","message":"bad limit"}}'
        status = q.get("status", [None])[0]
        after = q.get("starting_after", [None])[0]
        i = self.n - 1 if after is None else int(after.rsplit("Bench", 1)[1]) - 1
        picked: list[str] = []
        while i >= 0 and len(picked) < limit:  # newest (highest index) first
            current = STATUSES[self.status[i]]
            wanted = status == current or (status is None and current != "canceled")
            if status == "all" or wanted:
                picked.append(self.body(i))
            i -= 1
        # Exact for status=all (what stripectl asks); may over-report when filtering.
        has_more = "true" if i >= 0 and len(picked) == limit else "false"
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


def handler(state: Subscriptions) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", "req_bench")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            split = urlsplit(self.path)
            q = parse_qs(split.query)
            if split.path == "/_bench/stats":
                self._send(200, json.dumps({"requests": state.requests}).encode())
                return
            with state.lock:
                state.requests += 1
            if split.path == "/v1/subscriptions":
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
            else:
                self._send(404, b'{"error":{"type":"invalid_request_error","message":"no"}}')

    return Handler


def main() -> None:
    n = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(Subscriptions(n)))
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
