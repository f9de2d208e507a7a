"""`stripectl webhook probe` against real handlers on 127.0.0.1, one per failure mode."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from typer.testing import CliRunner

from stripectl.cli.app import app
from tests.fakes.webhook_handlers import HandlerApp, serve_handler

SECRET = "whsec_stripectl_probe_test_0000000000000000"
runner = CliRunner()
MUST_ACCEPT = {"valid", "pretty_unicode", "secret_roll", "duplicate", "concurrent_1",
               "concurrent_2", "unknown_type"}
MUST_REFUSE = {"no_signature", "garbled_signature", "v0_only", "tampered_body", "wrong_secret",
               "expired"}


def probe(url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    res = runner.invoke(app, ["webhook", "probe", url, "--secret", SECRET, "--json", *extra])
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


def results(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in data["checks"]}


def failed(data: dict[str, Any]) -> set[str]:
    return {c["check"] for c in data["checks"] if c["result"] == "fail"}


def test_correct_handler_passes_every_check() -> None:
    handler = HandlerApp("correct", SECRET)
    with serve_handler(handler) as url:
        code, data = probe(url)
    assert code == 0, data["findings"]
    checks = results(data)
    assert set(checks) == MUST_ACCEPT | MUST_REFUSE
    assert all(checks[n]["status"] == 200 for n in MUST_ACCEPT)
    assert all(checks[n]["status"] == 400 for n in MUST_REFUSE)
    assert data["summary"]["accepts_forged_events"] is False
    assert data["findings"] == []
    # What reached the handler's logic is recognisable as a probe, and only valid ones did.
    ids = {e["id"] for e in handler.received}
    assert ids and all(i.startswith("evt_stripectl_probe_") for i in ids)
    assert ids == {checks[n]["event_id"] for n in MUST_ACCEPT}
    assert {e["type"] for e in handler.received} == {"balance.available",
                                                     "stripectl_probe.unknown_type"}


def test_handler_that_skips_verification_is_critical() -> None:
    with serve_handler(HandlerApp("no_verify", SECRET)) as url:
        code, data = probe(url)
    assert code == 1
    assert failed(data) == MUST_REFUSE
    assert data["summary"]["accepts_forged_events"] is True
    critical = [f for f in data["findings"] if f["severity"] == "critical"]
    assert {f["check"] for f in critical} == MUST_REFUSE
    assert all("accepts forged events" in f["message"] for f in critical)


def test_reserialising_middleware_fails_the_pretty_unicode_check() -> None:
    with serve_handler(HandlerApp("reserialize", SECRET)) as url:
        code, data = probe(url)
    assert code == 1
    # Compact ASCII bodies survive a compact re-serialisation; Stripe's real
    # (indented, UTF-8) bodies do not.
    assert failed(data) == {"pretty_unicode"}
    assert results(data)["pretty_unicode"]["status"] == 400


def test_500_on_duplicates_fails_the_duplicate_checks() -> None:
    with serve_handler(HandlerApp("dup_500", SECRET)) as url:
        code, data = probe(url)
    assert code == 1
    bad = failed(data)
    assert "duplicate" in bad and bad <= {"duplicate", "concurrent_1", "concurrent_2"}
    # Of the two concurrent copies exactly one is the second delivery.
    assert len(bad & {"concurrent_1", "concurrent_2"}) == 1
    messages = [f["message"] for f in data["findings"] if f["check"] == "duplicate"]
    assert messages and "duplicates are normal" in messages[0]


def test_redirecting_handler_fails_and_is_told_why() -> None:
    with serve_handler(HandlerApp("redirect", SECRET)) as url:
        code, data = probe(url)
    assert code == 1
    checks = results(data)
    assert all(c["status"] == 308 for c in checks.values())
    assert failed(data) == MUST_ACCEPT | MUST_REFUSE  # never followed, never accepted
    assert data["summary"]["accepts_forged_events"] is False
    assert checks["valid"]["location"] == "/webhooks/stripe/"
    assert any("redirect" in m for m in checks["valid"]["findings"])


def test_slow_handler_is_a_should_finding_not_a_failure() -> None:
    with serve_handler(HandlerApp("slow", SECRET, delay=0.4)) as url:
        code, data = probe(url, "--budget", "0.1")
    assert code == 0
    slow = [f for f in data["findings"] if "budget" in f["message"]]
    assert {f["check"] for f in slow} == MUST_ACCEPT | MUST_REFUSE
    assert all(f["severity"] == "should" for f in slow)
    assert data["budget_ms"] == 100


def test_handler_without_timestamp_tolerance_accepts_old_signatures() -> None:
    with serve_handler(HandlerApp("no_tolerance", SECRET)) as url:
        code, data = probe(url)
    assert code == 1
    assert failed(data) == {"expired"}
    assert data["summary"]["accepts_forged_events"] is True


def test_echoed_signature_is_a_should_finding() -> None:
    with serve_handler(HandlerApp("echo", SECRET)) as url:
        code, data = probe(url)
    assert code == 0
    echoed = {f["check"] for f in data["findings"] if "echoes the signature" in f["message"]}
    assert {"tampered_body", "wrong_secret", "v0_only"} <= echoed
    assert all(f["severity"] == "should" for f in data["findings"])


def test_custom_type_and_secret_never_printed() -> None:
    handler = HandlerApp("correct", SECRET)
    with serve_handler(handler) as url:
        res = runner.invoke(app, ["webhook", "probe", url, "--secret", SECRET,
                                  "--type", "customer.subscription.updated"])
    assert res.exit_code == 0, res.output
    assert "customer.subscription.updated" in {e["type"] for e in handler.received}
    assert SECRET not in res.output and "PASS" in res.stdout and "FAIL" not in res.stdout


def test_junit_and_markdown() -> None:
    with serve_handler(HandlerApp("no_verify", SECRET)) as url:
        junit = runner.invoke(app, ["webhook", "probe", url, "--secret", SECRET,
                                    "--format", "junit"])
        md = runner.invoke(app, ["webhook", "probe", url, "--secret", SECRET,
                                 "--format", "markdown"])
    assert junit.exit_code == 1 and md.exit_code == 1
    suite = ET.fromstring(junit.stdout.split("?>", 1)[1]).find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "13" and suite.get("failures") == "6"
    failures = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failures == MUST_REFUSE
    assert "CRITICAL: your endpoint accepts forged events" in md.stdout
    assert "| no\\_signature |" in md.stdout


def test_non_loopback_url_refused_without_allow_remote() -> None:
    res = runner.invoke(app, ["webhook", "probe", "http://192.0.2.10/hook", "--secret", SECRET])
    assert res.exit_code == 2
    assert "not a loopback address" in res.stderr and "--allow-remote" in res.stderr


def test_unreachable_handler_is_a_network_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens
    res = runner.invoke(app, ["webhook", "probe", f"http://user:pw123@127.0.0.1:{port}/x",
                              "--secret", SECRET])
    assert res.exit_code == 5, res.output
    assert "cannot reach" in res.stderr and "pw123" not in res.stderr


@pytest.mark.parametrize("bad", ["ftp://127.0.0.1/x", "127.0.0.1:8000"])
def test_bad_url_is_usage(bad: str) -> None:
    res = runner.invoke(app, ["webhook", "probe", bad, "--secret", SECRET])
    assert res.exit_code == 2, res.output


def test_missing_secret_is_config() -> None:
    res = runner.invoke(app, ["webhook", "probe", "http://127.0.0.1:9/x"])
    assert res.exit_code == 3 and "no webhook secret" in res.stderr


def test_help_names_the_default_type_and_the_risk() -> None:
    from stripectl.services.probe_cases import DEFAULT_TYPE

    res = runner.invoke(app, ["webhook", "probe", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert f"type {DEFAULT_TYPE}" in text
    assert "evt_stripectl_probe_" in text and "test mode" in text and "--allow-remote" in text
