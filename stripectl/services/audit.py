"""`webhook audit`: the account's webhook endpoints against what the mirror needs.

Findings per endpoint (issue 16):
- `missing_events`: event types the mirror's state machine handles
  (webhooks/facts.HANDLED: every subscription transition, invoices, checkout
  sessions, payment intents, customers) that the endpoint does not subscribe
  to. A missing `customer.subscription.deleted` means users keep access after
  cancellation.
- `api_version`: the endpoint renders events with another version than the
  one stripectl's SDK pins (or with the account default, unknown here).
- `mixed_api_versions`: the enabled endpoints do not agree on one version.
- `not_https`: a live-mode endpoint whose URL is not https.
- `disabled`: Stripe sends it nothing (and retries nothing) while disabled.
- `wildcard`: subscribed to `*`: every new event type arrives too, including
  types a handler may answer non-2xx to; list the types instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from stripectl.redact import redact_url
from stripectl.webhooks.facts import HANDLED, SUBSCRIPTION_TYPES

ACCOUNT = "(account)"  # the endpoint column of findings about all endpoints


@dataclass
class AuditReport:
    sdk_api_version: str
    endpoints: list[dict[str, Any]]
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for f in self.findings:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
        return {
            "endpoints": len(self.endpoints),
            "findings": len(self.findings),
            "by_kind": kinds,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "sdk_api_version": self.sdk_api_version,
            "required_events": sorted(HANDLED),
            "summary": self.summary,
            "endpoints": self.endpoints,
            "findings": self.findings,
        }


def _endpoint_view(ep: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ep.get("id"),
        "url": redact_url(str(ep.get("url") or "")),
        "status": ep.get("status"),
        "livemode": bool(ep.get("livemode")),
        "api_version": ep.get("api_version"),
        "enabled_events": list(ep.get("enabled_events") or []),
    }


def audit(
    endpoints: Iterable[dict[str, Any]],
    *,
    sdk_api_version: str,
    only: Iterable[str] = (),
) -> AuditReport:
    """Grade each endpoint (only those ids in `only`, when given)."""
    wanted = set(only)
    views = [_endpoint_view(ep) for ep in endpoints if not wanted or ep.get("id") in wanted]
    report = AuditReport(sdk_api_version=sdk_api_version, endpoints=views)

    def add(ep: dict[str, Any] | None, kind: str, detail: str, **extra: Any) -> None:
        report.findings.append({
            "endpoint": ep["id"] if ep else ACCOUNT,
            "url": ep["url"] if ep else None,
            "kind": kind,
            "detail": detail,
            **extra,
        })

    for ep in views:
        events = set(ep["enabled_events"])
        if ep["status"] == "disabled":
            add(ep, "disabled", "the endpoint is disabled: Stripe sends it nothing")
        if "*" in events:
            add(ep, "wildcard", "subscribed to '*': every event type, new ones included; "
                "list the types the handler handles")
        else:
            missing = sorted(HANDLED - events)
            if missing:
                lost = sorted(SUBSCRIPTION_TYPES & set(missing))
                why = (f"; without {', '.join(lost[:3])}{' ...' if len(lost) > 3 else ''} the "
                       "mirror misses subscription transitions (a missing "
                       "customer.subscription.deleted keeps access after cancellation)"
                       ) if lost else ""
                add(ep, "missing_events",
                    f"{len(missing)} event type(s) the mirror needs are not subscribed{why}",
                    missing=missing)
        version = ep["api_version"]
        if version is None:
            add(ep, "api_version", "no api_version: events use the account's default version, "
                f"not necessarily {sdk_api_version} (stripectl's SDK)")
        elif version != sdk_api_version:
            add(ep, "api_version", f"renders events with {version}; stripectl's SDK pins "
                f"{sdk_api_version}")
        scheme = urlsplit(ep["url"]).scheme
        if ep["livemode"] and scheme != "https":
            add(ep, "not_https", f"a live-mode endpoint over {scheme or 'no scheme'}: "
                "deliveries (customer data) travel unencrypted")
    versions = {ep["api_version"] or "(account default)"
                for ep in views if ep["status"] != "disabled"}
    if len(versions) > 1:
        add(None, "mixed_api_versions",
            f"enabled endpoints use {len(versions)} API versions: {', '.join(sorted(versions))}")
    return report
