"""A fake Subscriptions API in the current shape, paging like Stripe.

`GET /v1/subscriptions` lists newest first (created desc, then id desc) with
`limit` (1..100, default 10), `starting_after` / `ending_before` cursors,
`has_more`, `customer`, `created` (int or gt/gte/lt/lte), and `status` (a status, `all`, `ended`; none = every
subscription that is not canceled). Like Stripe, a subscription on a test
clock is listed only when `customer` or `test_clock` is given. `GET /v1/subscriptions/:id` and
`GET /v1/invoices/:id` retrieve (404 resource_missing when unknown).

Objects are stored as given (build them with tests/factories.py:
`items.data[].price`, `items.data[].current_period_end`, several items).
`fail_next` injects responses (e.g. a 401) ahead of normal routing.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.base import FakeStripe, Request, Response, error

ENDED = ("canceled", "incomplete_expired")


_OPS = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}


def _created_matches(created: int, flt: Any) -> bool:
    """`created` as Stripe filters it: an exact int or gt/gte/lt/lte bounds."""
    if flt is None:
        return True
    if isinstance(flt, str):
        return created == int(flt)
    return all(_OPS[op](created, int(bound)) for op, bound in flt.items())


class FakeSubscriptions(FakeStripe):
    def __init__(
        self,
        subscriptions: list[dict[str, Any]] | None = None,
        invoices: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.subs: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.fail_next: list[Response] = []
        for sub in subscriptions or []:
            self.put(sub)
        for inv in invoices or []:
            self.invoices[inv["id"]] = inv

    # ---- state for tests ----------------------------------------------------------

    def put(self, sub: dict[str, Any]) -> None:
        with self.lock:
            self.subs[sub["id"]] = copy.deepcopy(sub)

    def update(self, sub_id: str, **changes: Any) -> None:
        """Change top-level fields, as a Dashboard edit would."""
        with self.lock:
            self.subs[sub_id].update(copy.deepcopy(changes))

    def remove(self, sub_id: str) -> None:
        with self.lock:
            del self.subs[sub_id]

    def list_requests(self) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path == "/v1/subscriptions"]

    # ---- HTTP ---------------------------------------------------------------------

    def route(self, req: Request) -> Response:
        if self.fail_next:
            return self.fail_next.pop(0)
        if req.method != "GET":
            return error(405, "this fake only reads")
        if req.path == "/v1/subscriptions":
            return self._list(req.query)
        for prefix, table, what in (
            ("/v1/subscriptions/", self.subs, "subscription"),
            ("/v1/invoices/", self.invoices, "invoice"),
        ):
            if req.path.startswith(prefix):
                obj = table.get(req.path[len(prefix):])
                if obj is None:
                    return error(404, f"No such {what}: '{req.path[len(prefix):]}'",
                                 code="resource_missing", param="id")
                return Response(200, obj)
        return error(404, f"Unrecognized request URL (GET: {req.path})")

    def _selected(self, q: dict[str, Any]) -> list[dict[str, Any]]:
        status = q.get("status")
        customer = q.get("customer")
        with self.lock:
            subs = list(self.subs.values())
        out = []
        for sub in subs:
            if customer and sub.get("customer") != customer:
                continue
            if sub.get("test_clock") and not customer and q.get("test_clock") != sub["test_clock"]:
                continue  # Stripe lists test-clock subscriptions only by customer/clock
            if status is None and sub["status"] == "canceled":
                continue
            if status == "ended" and sub["status"] not in ENDED:
                continue
            if status not in (None, "all", "ended") and sub["status"] != status:
                continue
            if not _created_matches(sub.get("created") or 0, q.get("created")):
                continue
            out.append(sub)
        out.sort(key=lambda s: (s.get("created") or 0, s["id"]), reverse=True)
        return out

    def _list(self, q: dict[str, Any]) -> Response:
        try:
            limit = int(q.get("limit", 10))
        except ValueError:
            return error(400, "Invalid integer: limit", param="limit")
        if not 1 <= limit <= 100:
            return error(400, "This value must be between 1 and 100", param="limit")
        subs = self._selected(q)
        ids = [s["id"] for s in subs]
        after, before = q.get("starting_after"), q.get("ending_before")
        for cursor in (after, before):
            if cursor and cursor not in ids:
                return error(400, f"No such subscription: '{cursor}'", code="resource_missing")
        if after:
            rest = subs[ids.index(after) + 1:]
            page, has_more = rest[:limit], len(rest) > limit
        elif before:
            rest = subs[: ids.index(before)]
            page, has_more = rest[-limit:], len(rest) > limit
        else:
            page, has_more = subs[:limit], len(subs) > limit
        return Response(200, {
            "object": "list", "data": page, "has_more": has_more, "url": "/v1/subscriptions",
        })
