"""`webhook probe`: send the cases of probe_cases.py to a handler and grade the answers.

Grading (issue 16):
- must accept: 2xx. Anything else fails; a 5xx on a duplicate or a
  concurrent copy is called out (Stripe retries, and re-deliveries are normal).
- must refuse: 4xx. A 2xx is CRITICAL: the endpoint accepts forged events.
  A 3xx or 5xx is a failure too (not a refusal Stripe's docs describe).
- should: every answer within the latency budget (Stripe counts slow answers
  as failed deliveries and retries them); no 3xx (Stripe treats any redirect
  as a failure and does not follow it); a 4xx body that does not echo the
  secret or the signature sent.

HTTP: one new connection per request through http.client, like Stripe's own
deliveries: no proxy from the environment, no redirect followed, no cookies.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from stripectl.errors import NetworkError, UsageError
from stripectl.redact import redact_url
from stripectl.services.probe_cases import (
    DEFAULT_TYPE,
    MUST_ACCEPT,
    MUST_REFUSE,
    Case,
    build_cases,
)

READ_LIMIT = 64 * 1024  # of an answer body, to look for an echoed secret

CRITICAL = "critical"
MUST = "must"
SHOULD = "should"


@dataclass(frozen=True)
class ProbeConfig:
    url: str
    secret: str = field(repr=False)
    event_type: str = DEFAULT_TYPE
    budget: float = 3.0  # seconds; slower answers are a 'should' finding
    timeout: float = 15.0  # seconds before a request is given up
    tolerance: int = 300
    allow_remote: bool = False
    api_version: str | None = None


@dataclass
class Answer:
    signature: str | None = None  # the Stripe-Signature sent
    status: int | None = None
    latency_ms: float | None = None
    body: bytes = b""
    location: str | None = None
    error: str | None = None


@dataclass
class CheckResult:
    case: Case
    answer: Answer
    passed: bool
    findings: list[dict[str, str]]

    def to_json(self) -> dict[str, Any]:
        a = self.answer
        return {
            "check": self.case.name,
            "category": self.case.category,
            "expect": "2xx" if self.case.category == MUST_ACCEPT else "4xx",
            "description": self.case.description,
            "event_id": self.case.event_id,
            "status": a.status,
            "latency_ms": a.latency_ms,
            "error": a.error,
            "location": redact_url(a.location) if a.location else None,
            "result": "pass" if self.passed else "fail",
            "findings": [f["message"] for f in self.findings],
        }


@dataclass
class ProbeReport:
    url: str
    event_type: str
    budget_ms: float
    results: list[CheckResult]

    @property
    def findings(self) -> list[dict[str, str]]:
        return [f for r in self.results for f in r.findings]

    @property
    def ok(self) -> bool:
        """Every must-check passed (should-findings do not fail the run)."""
        return all(r.passed for r in self.results)

    @property
    def critical(self) -> bool:
        return any(f["severity"] == CRITICAL for f in self.findings)

    @property
    def summary(self) -> dict[str, Any]:
        sev = [f["severity"] for f in self.findings]
        return {
            "checks": len(self.results),
            "passed": sum(1 for r in self.results if r.passed),
            "failed": sum(1 for r in self.results if not r.passed),
            "critical": sev.count(CRITICAL),
            "should": sev.count(SHOULD),
            "accepts_forged_events": self.critical,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "url": redact_url(self.url),
            "event_type": self.event_type,
            "budget_ms": self.budget_ms,
            "summary": self.summary,
            "checks": [r.to_json() for r in self.results],
            "findings": self.findings,
        }


# --- the target -----------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """A literal loopback address, `localhost`, or a name every address of
    which is loopback."""
    name = host.strip("[]")
    if name.lower() == "localhost" or name.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback
                               for a in addrs)


def check_target(config: ProbeConfig) -> None:
    parts = urlsplit(config.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"URL must be an http(s) URL, got {redact_url(config.url)!r}",
            hint="e.g. stripectl webhook probe http://127.0.0.1:8000/webhooks/stripe --secret whsec_...",
        )
    if not config.secret.startswith("whsec_"):
        raise UsageError("--secret must be the endpoint's signing secret (whsec_...)")
    if config.budget <= 0 or config.timeout <= 0:
        raise UsageError("--budget and --timeout must be > 0 seconds")
    if not config.allow_remote and not is_loopback_host(parts.hostname):
        raise UsageError(
            f"{parts.hostname} is not a loopback address: the valid probe deliveries reach "
            "the handler's business logic",
            hint="probe a local or staging handler in test mode; pass --allow-remote to send "
            "to another host on purpose",
        )


# --- sending --------------------------------------------------------------------


def send(url: str, case: Case, timeout: float, clock: Callable[[], float] = time.time) -> Answer:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    port = parts.port
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            parts.hostname or "", port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", port, timeout=timeout)
    headers = {**case.headers_at(int(clock())), "Content-Length": str(len(case.body)),
               "Connection": "close"}
    signature = headers.get("Stripe-Signature")
    started = time.perf_counter()
    try:
        conn.request("POST", path, body=case.body, headers=headers)
        resp = conn.getresponse()
        body = resp.read(READ_LIMIT)
        elapsed = (time.perf_counter() - started) * 1000
        return Answer(signature, resp.status, round(elapsed, 1), body, resp.getheader("Location"))
    except (OSError, http.client.HTTPException) as exc:
        elapsed = (time.perf_counter() - started) * 1000
        what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        return Answer(signature, None, round(elapsed, 1), error=what)
    finally:
        conn.close()


def _send_together(url: str, cases: list[Case], timeout: float,
                   clock: Callable[[], float]) -> list[Answer]:
    """Release the requests at one barrier, one thread each."""
    answers: list[Answer | None] = [None] * len(cases)
    barrier = threading.Barrier(len(cases))

    def run(i: int) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout)
        answers[i] = send(url, cases[i], timeout, clock)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [a or Answer(error="not sent") for a in answers]


# --- grading --------------------------------------------------------------------


def _echo(answer: Answer, case: Case, secret: str) -> str | None:
    text = answer.body
    if secret.encode() in text:
        return "the secret"
    sig = answer.signature or ""
    for part in sig.split(","):
        key, _, value = part.partition("=")
        if key in ("v1", "v0") and len(value) >= 16 and value.encode() in text:
            return "the signature"
    return None


def grade(case: Case, answer: Answer, config: ProbeConfig) -> CheckResult:
    findings: list[dict[str, str]] = []
    name = case.name

    def add(severity: str, message: str) -> None:
        findings.append({"check": name, "severity": severity, "message": message})

    status = answer.status
    if case.category == MUST_ACCEPT:
        passed = status is not None and 200 <= status < 300
        if status is None:
            add(MUST, f"no answer ({answer.error}): Stripe would retry it")
        elif status >= 500 and name in ("duplicate", "concurrent_1", "concurrent_2"):
            add(MUST, f"{status} on a re-delivered event: duplicates are normal, answer 2xx")
        elif not passed:
            add(MUST, f"answered {status} to {case.description}; expected 2xx")
    else:
        passed = status is not None and 400 <= status < 500
        if status is not None and 200 <= status < 300:
            add(CRITICAL, f"your endpoint accepts forged events: {status} to {case.description}")
        elif status is None:
            add(MUST, f"no answer ({answer.error}); expected a 4xx refusal")
        elif not passed:
            add(MUST, f"answered {status} to {case.description}; expected a 4xx refusal")
        elif (echo := _echo(answer, case, config.secret)) is not None:
            add(SHOULD, f"the {status} answer echoes {echo}: keep secrets out of error bodies")
    if status is not None and 300 <= status < 400:
        add(SHOULD, f"redirect ({status}): Stripe treats any redirect as a failed delivery; "
                    "use the final URL")
    if answer.latency_ms is not None and answer.latency_ms > config.budget * 1000:
        add(SHOULD, f"answered in {answer.latency_ms:.0f} ms, over the {config.budget * 1000:.0f} "
                    "ms budget: Stripe counts slow answers as failures and retries them")
    return CheckResult(case, answer, passed, findings)


def probe(
    config: ProbeConfig,
    *,
    now: Callable[[], float] = time.time,
    progress: Callable[[int], None] | None = None,
) -> ProbeReport:
    check_target(config)
    cases = build_cases(
        secret=config.secret,
        event_type=config.event_type,
        now=int(now()),
        tolerance=config.tolerance,
        api_version=config.api_version,
    )
    by_name = {c.name: c for c in cases}
    partners = {c.concurrent_with: c for c in cases if c.concurrent_with}
    answers: dict[str, Answer] = {}
    for case in cases:
        if case.name in answers:
            continue
        group = [case] + ([partners[case.name]] if case.name in partners else [])
        got = [send(config.url, group[0], config.timeout, now)] if len(group) == 1 else \
            _send_together(config.url, group, config.timeout, now)
        for c, a in zip(group, got, strict=True):
            answers[c.name] = a
            if progress is not None:
                progress(1)
        if case is cases[0] and got[0].status is None and got[0].error != "timed out":
            raise NetworkError(
                f"cannot reach {redact_url(config.url)}: {got[0].error}",
                hint="is the handler running? check the URL and port",
            )
    results = [grade(by_name[n], answers[n], config) for n in (c.name for c in cases)]
    return ProbeReport(
        url=config.url,
        event_type=config.event_type,
        budget_ms=config.budget * 1000,
        results=results,
    )


__all__ = ["MUST_REFUSE", "ProbeConfig", "ProbeReport", "probe"]
