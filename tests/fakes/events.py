"""A fake Events API (`GET /v1/events`, `GET /v1/events/:id`) that pages like Stripe.

Lists are newest first (created desc, then id desc); `starting_after` pages
towards older events, `ending_before` returns the `limit` events immediately
newer than the cursor (still newest first); `has_more` says whether more
remain in that direction. Filters: `created` (int or gt/gte/lt/lte), `types[]`,
`type` (with `*` wildcard), `delivery_success`.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from tests.fakes.base import FakeStripe, Request, Response, error


class FakeEvents(FakeStripe):
    def __init__(self, events: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.events: dict[str, dict[str, Any]] = {}
        self.failed: set[str] = set()  # ids whose delivery_success is false
        for e in events or []:
            self.add(e)

    def add(self, event: dict[str, Any], *, delivered: bool = True) -> None:
        with self.lock:
            self.events[event["id"]] = event
            if delivered:
                self.failed.discard(event["id"])
            else:
                self.failed.add(event["id"])

    def list_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/v1/events"]

    def route(self, req: Request) -> Response:
        if req.method != "GET":
            return error(405, "method not allowed")
        if req.path == "/v1/events":
            return self._list(req.query)
        if req.path.startswith("/v1/events/"):
            evt = self.events.get(req.path.rsplit("/", 1)[1])
            if evt is None:
                return error(404, "No such event", code="resource_missing")
            return Response(200, evt)
        return error(404, f"Unrecognized request URL (GET: {req.path})")

    def _matches(self, evt: dict[str, Any], q: dict[str, Any]) -> bool:
        created = q.get("created")
        if isinstance(created, str) and evt["created"] != int(created):
            return False
        if isinstance(created, dict):
            checks = {
                "gt": lambda a, b: a > b,
                "gte": lambda a, b: a >= b,
                "lt": lambda a, b: a < b,
                "lte": lambda a, b: a <= b,
            }
            for op, bound in created.items():
                if not checks[op](evt["created"], int(bound)):
                    return False
        types = q.get("types")
        if types is not None:
            names = types if isinstance(types, list) else list(types.values())
            if evt["type"] not in names:
                return False
        if "type" in q and not fnmatch.fnmatchcase(evt["type"], q["type"]):
            return False
        if "delivery_success" in q:
            wanted = q["delivery_success"] == "true"
            if (evt["id"] not in self.failed) != wanted:
                return False
        return True

    def _list(self, q: dict[str, Any]) -> Response:
        if "types" in q and "type" in q:
            return error(400, "You may pass either `type` or `types`, but not both.")
        limit = int(q.get("limit", 10))
        if not 1 <= limit <= 100:
            return error(400, "Invalid limit: must be between 1 and 100")
        with self.lock:
            items = sorted(
                (e for e in self.events.values() if self._matches(e, q)),
                key=lambda e: (e["created"], e["id"]),
                reverse=True,
            )

        def key(e: dict[str, Any]) -> tuple[int, str]:
            return (e["created"], e["id"])

        # A cursor is a position in the full ordering, even if filtered out.
        cursor = q.get("starting_after") or q.get("ending_before")
        if cursor and cursor not in self.events:
            return error(400, f"No such event: '{cursor}'", code="resource_missing")
        if q.get("starting_after"):
            rest = [e for e in items if key(e) < key(self.events[cursor])]
            page, more = rest[:limit], len(rest) > limit
        elif q.get("ending_before"):
            before = [e for e in items if key(e) > key(self.events[cursor])]
            page, more = before[-limit:], len(before) > limit
        else:
            page, more = items[:limit], len(items) > limit
        return Response(
            200, {"object": "list", "url": "/v1/events", "has_more": more, "data": page}
        )
