"""A fake `GET /v1/webhook_endpoints` that pages like Stripe (newest first,
`limit` 1..100, `starting_after`, `has_more`)."""

from __future__ import annotations

from typing import Any

from tests.fakes.base import FakeStripe, Request, Response, error


def endpoint(n: int, **fields: Any) -> dict[str, Any]:
    """A WebhookEndpoint object as the API returns it."""
    return {
        "id": f"we_fake_{n:04d}",
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": 1_790_000_000 + n,
        "description": None,
        "enabled_events": ["*"],
        "livemode": False,
        "metadata": {},
        "status": "enabled",
        "url": f"https://hooks.example.com/{n}",
        **fields,
    }


class FakeWebhookEndpoints(FakeStripe):
    def __init__(self, endpoints: list[dict[str, Any]]) -> None:
        super().__init__()
        self.endpoints = sorted(endpoints, key=lambda e: (e["created"], e["id"]), reverse=True)

    def list_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/v1/webhook_endpoints"]

    def route(self, req: Request) -> Response:
        if req.method != "GET" or req.path != "/v1/webhook_endpoints":
            return error(404, f"Unrecognized request URL ({req.method}: {req.path})")
        limit = int(req.query.get("limit", 10))
        if not 1 <= limit <= 100:
            return error(400, "Invalid limit: must be between 1 and 100")
        items = self.endpoints
        after = req.query.get("starting_after")
        if after:
            ids = [e["id"] for e in items]
            if after not in ids:
                return error(400, f"No such webhook endpoint: '{after}'", code="resource_missing")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return Response(200, {"object": "list", "url": "/v1/webhook_endpoints",
                              "has_more": len(items) > limit, "data": page})
