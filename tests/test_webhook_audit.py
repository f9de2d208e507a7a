"""`stripectl webhook audit` against a fake that serves webhook endpoints (with paging)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.webhooks.facts import HANDLED
from tests.fakes.base import serve
from tests.fakes.idempotent import FAKE_KEY
from tests.fakes.webhook_endpoints import FakeWebhookEndpoints, endpoint

runner = CliRunner()
GOOD = {"enabled_events": sorted(HANDLED), "api_version": stripe.api_version}


@pytest.fixture
def audit() -> Iterator[Any]:
    servers: list[Any] = []

    def run(endpoints: list[dict[str, Any]], *extra: str) -> tuple[int, Any, FakeWebhookEndpoints]:
        fake = FakeWebhookEndpoints(endpoints)
        ctx = serve(fake)
        url = ctx.__enter__()
        servers.append(ctx)
        res = runner.invoke(app, ["webhook", "audit", "--api-key", FAKE_KEY, "--api-base", url,
                                  *extra])
        assert res.exit_code in (0, 1), res.output
        out = json.loads(res.stdout) if "--json" in extra else res.stdout
        return res.exit_code, out, fake

    yield run
    for ctx in servers:
        ctx.__exit__(None, None, None)


def kinds(data: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((f["endpoint"], f["kind"]) for f in data["findings"])


def test_well_configured_endpoints_over_three_pages(audit: Any) -> None:
    code, data, fake = audit([endpoint(n, **GOOD) for n in range(205)], "--json")
    assert code == 0, data["findings"]
    assert data["summary"] == {"endpoints": 205, "findings": 0, "by_kind": {}}
    assert len({e["id"] for e in data["endpoints"]}) == 205
    assert len(fake.list_requests()) == 3  # 100 + 100 + 5: the SDK's auto-paging
    assert all(r.query.get("limit") == "100" for r in fake.list_requests())
    assert data["sdk_api_version"] == stripe.api_version


def test_missing_subscription_deleted_is_named(audit: Any) -> None:
    events = sorted(HANDLED - {"customer.subscription.deleted"})
    code, data, _ = audit([endpoint(1, **{**GOOD, "enabled_events": events})], "--json")
    assert code == 1
    [finding] = data["findings"]
    assert finding["kind"] == "missing_events"
    assert finding["missing"] == ["customer.subscription.deleted"]
    assert "keeps access after cancellation" in finding["detail"]


def test_each_kind_of_finding(audit: Any) -> None:
    endpoints = [
        endpoint(1, **GOOD),
        endpoint(2, **{**GOOD, "api_version": "2025-03-31.basil"}),
        endpoint(3, **{**GOOD, "livemode": True, "url": "http://hooks.example.com/live"}),
        endpoint(4, **{**GOOD, "status": "disabled"}),
        endpoint(5, **{**GOOD, "enabled_events": ["*"]}),
        endpoint(6, **{**GOOD, "api_version": None}),
        endpoint(7, **{**GOOD, "url": "http://localhost:4242/webhooks"}),  # test mode: fine
    ]
    code, data, _ = audit(endpoints, "--json")
    assert code == 1
    assert kinds(data) == [
        ("(account)", "mixed_api_versions"),
        ("we_fake_0002", "api_version"),
        ("we_fake_0003", "not_https"),
        ("we_fake_0004", "disabled"),
        ("we_fake_0005", "wildcard"),
        ("we_fake_0006", "api_version"),
    ]
    mixed = next(f for f in data["findings"] if f["kind"] == "mixed_api_versions")
    assert "2025-03-31.basil" in mixed["detail"] and stripe.api_version in mixed["detail"]


def test_endpoint_filter_and_markdown(audit: Any) -> None:
    endpoints = [endpoint(1, **GOOD), endpoint(2, enabled_events=["invoice.paid"])]
    code, _, _ = audit(endpoints, "--endpoint", "we_fake_0001", "--json")
    assert code == 0
    code, md, _ = audit(endpoints, "--format", "markdown")
    assert code == 1
    assert md.startswith("## Webhook endpoint audit")
    assert "missing\\_events" in md and "customer.subscription.deleted" in md


def test_url_password_redacted(audit: Any) -> None:
    ep = endpoint(1, **{**GOOD, "url": "https://bob:hunter2@hooks.example.com/x"})
    code, data, _ = audit([ep], "--json")
    assert code == 0 and data["endpoints"][0]["url"] == "https://bob:***@hooks.example.com/x"


def test_refused_key_is_config() -> None:
    res = runner.invoke(app, ["webhook", "audit", "--api-key", "pk_test_123",
                              "--api-base", "http://127.0.0.1:9"])
    assert res.exit_code == 3 and "publishable" in res.stderr


def test_junit_one_case_per_endpoint(audit: Any) -> None:
    import xml.etree.ElementTree as ET

    endpoints = [endpoint(1, **GOOD), endpoint(2, **{**GOOD, "status": "disabled"})]
    code, out, _ = audit(endpoints, "--format", "junit")
    assert code == 1
    suite = ET.fromstring(out.split("?>", 1)[1]).find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    [failed] = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed.get("name") == "we_fake_0002"
