"""Forward saved deliveries to the user's own webhook handler, in event order.

Each delivery is POSTed with its exact raw body. With `sign_with`, the
Stripe-Signature header is re-computed with a fresh timestamp (a saved one
is stale by definition and any handler with a tolerance rejects it);
without it, the original headers go out unchanged. Only the given http(s)
URL is ever contacted: no proxies from the environment, no redirects.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from stripectl.errors import UsageError
from stripectl.redact import redact, redact_url
from stripectl.webhooks.delivery import Delivery

USER_AGENT = "stripectl-forward/1"
# Hop-by-hop and framing headers describe the original connection, not the
# delivery; urllib sets its own.
_DROP_HEADERS = {
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "accept-encoding",
    "expect",
}
_SNIPPET = 200


@dataclass
class ForwardReport:
    url: str
    signed: bool
    results: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def ok(self) -> bool:
        return all(_is_ok(r) for r in self.results)

    @property
    def summary(self) -> dict[str, int]:
        sent = sum(1 for r in self.results if r["status"] is not None)
        good = sum(1 for r in self.results if _is_ok(r))
        return {
            "total": len(self.results),
            "sent": sent,
            "ok": good,
            "failed": len(self.results) - good,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "signed": self.signed,
            "stopped_early": self.stopped_early,
            "summary": self.summary,
            "results": self.results,
        }


def _is_ok(result: dict[str, Any]) -> bool:
    status = result["status"]
    return result["error"] is None and status is not None and 200 <= status < 300


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is reported as the 3xx it is, never followed elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--forward-to must be an http(s) URL, got {redact(url)!r}",
            hint="e.g. --forward-to http://127.0.0.1:8000/webhooks/stripe",
        )
    return url


def split_credentials(url: str) -> tuple[str, str | None]:
    """(the URL without `user:pass@`, an Authorization header value or None).

    urllib would read `user:pass@host` as the host name; HTTP Basic auth is
    what such a URL means. The password never appears in a report: the
    report shows `redact_url(url)`.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    import base64
    from urllib.parse import unquote

    host = parts.netloc.rpartition("@")[2]
    bare = parts._replace(netloc=host).geturl()
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    return bare, "Basic " + base64.b64encode(pair.encode()).decode()


def _event_fields(delivery: Delivery) -> tuple[str | None, str | None, int | None]:
    try:
        event = json.loads(delivery.body)
    except (ValueError, UnicodeDecodeError):
        return None, None, None
    if not isinstance(event, dict):
        return None, None, None
    eid, etype, created = event.get("id"), event.get("type"), event.get("created")
    return (
        eid if isinstance(eid, str) else None,
        etype if isinstance(etype, str) else None,
        created if isinstance(created, int) and not isinstance(created, bool) else None,
    )


def _headers(delivery: Delivery, sign_with: str | None) -> tuple[dict[str, str], str | None]:
    """Outgoing headers, or an error why this delivery cannot be sent."""
    headers = {k: v for k, v in delivery.headers.items() if k.lower() not in _DROP_HEADERS}
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json; charset=utf-8"
    if not any(k.lower() == "user-agent" for k in headers):
        headers["User-Agent"] = USER_AGENT
    if sign_with is None:
        return headers, None
    from stripectl.gateway.signatures import sign

    try:
        text = delivery.body.decode("utf-8")
    except UnicodeDecodeError:
        return headers, "body is not UTF-8: cannot re-sign it"
    headers = {k: v for k, v in headers.items() if k.lower() != "stripe-signature"}
    headers["Stripe-Signature"] = sign(text, sign_with, int(time.time()))
    return headers, None


def _post(
    opener: urllib.request.OpenerDirector,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
) -> tuple[int | None, str | None]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as resp:
            resp.read(64 * 1024)
            status = int(resp.status)
            return status, None
    except urllib.error.HTTPError as exc:
        try:
            snippet = exc.read(_SNIPPET).decode("utf-8", "replace").strip()
        except OSError:
            snippet = ""
        finally:
            exc.close()
        return int(exc.code), redact(f"HTTP {exc.code}" + (f": {snippet}" if snippet else ""))
    except urllib.error.URLError as exc:
        return None, redact(f"cannot reach {url}: {exc.reason}")
    except (TimeoutError, OSError) as exc:
        return None, redact(f"cannot reach {url}: {exc}")


def forward(
    deliveries: Iterable[Delivery],
    url: str,
    *,
    sign_with: str | None,
    rate: float | None,
    stop_on_error: bool,
    timeout: float = 10.0,
    progress: Callable[[int], None] | None = None,
) -> ForwardReport:
    """POST each delivery to `url`, oldest event first; never raises per delivery."""
    check_url(url)
    if rate is not None and rate <= 0:
        raise UsageError(f"--rate must be > 0 per second, got {rate}")
    if sign_with is not None and not sign_with.startswith("whsec_"):
        raise UsageError("--sign-with must be a webhook signing secret (whsec_...)")
    # Order by event.created; unparsable bodies keep their input order at the end.
    indexed = [(_event_fields(d), n, d) for n, d in enumerate(deliveries)]
    indexed.sort(key=lambda t: (t[0][2] is None, t[0][2] or 0, t[1]))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    report = ForwardReport(url=redact_url(url), signed=sign_with is not None)
    target, auth = split_credentials(url)
    interval = 1.0 / rate if rate else 0.0
    next_at = time.monotonic()
    for (event_id, event_type, _created), _n, delivery in indexed:
        result: dict[str, Any] = {
            "source": delivery.source,
            "event_id": event_id,
            "type": event_type,
            "status": None,
            "latency_ms": None,
            "error": None,
        }
        if delivery.error:
            result["error"] = f"unreadable input ({delivery.error}): not sent"
        else:
            headers, problem = _headers(delivery, sign_with)
            if problem:
                result["error"] = problem
            else:
                wait = next_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                next_at = max(next_at, time.monotonic()) + interval
                started = time.perf_counter()
                if auth is not None:
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                    headers["Authorization"] = auth
                result["status"], result["error"] = _post(
                    opener, target, delivery.body, headers, timeout
                )
                result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        report.results.append(result)
        if progress is not None:
            progress(1)
        if stop_on_error and not _is_ok(result):
            report.stopped_early = len(report.results) < len(indexed)
            break
    return report
