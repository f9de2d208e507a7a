"""`replay-webhook --forward-to`: deliveries POSTed, in event order, to a real handler.

The handler below verifies signatures with stripe-python itself, exactly as a
user's endpoint would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe
from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.errors import UsageError
from stripectl.services.forward import forward
from stripectl.webhooks.delivery import Delivery
from tests import factories as f

ORIGINAL = f.EXAMPLE_SECRET
HANDLER_SECRET = "whsec_stripectl_handler_0000000000"
runner = CliRunner()
LONG_AGO = 1_600_000_000  # 2020: any saved signature is older than any handler's tolerance


@dataclass
class Handler:
    """A user's webhook endpoint: verifies, records, answers."""

    secret: str
    tolerance: int | None = 300
    fail_ids: set[str] = field(default_factory=set)
    redirect_to: str | None = None
    refusal: bytes = b'{"error": "handler says no"}'
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


def _serve(handler: Handler) -> Iterator[Handler]:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            header = self.headers.get("Stripe-Signature") or ""
            try:
                stripe.WebhookSignature.verify_header(
                    body.decode(), header, handler.secret, tolerance=handler.tolerance
                )
                verified = True
            except stripe.SignatureVerificationError:
                verified = False
            event = json.loads(body)
            handler.received.append(
                {
                    "id": event["id"],
                    "signature": header,
                    "verified": verified,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
            )
            if handler.redirect_to:
                self.send_response(302)
                self.send_header("Location", handler.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 400 if not verified else 500 if event["id"] in handler.fail_ids else 200
            payload = b'{"ok": true}' if status == 200 else handler.refusal
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fresh_handler() -> Iterator[Handler]:
    yield from _serve(Handler(secret=HANDLER_SECRET))


@pytest.fixture
def original_handler() -> Iterator[Handler]:
    # Verifies against the ORIGINAL secret with no age limit: saved signatures pass.
    yield from _serve(Handler(secret=ORIGINAL, tolerance=None))


def saved(n: int = 5) -> list[Delivery]:
    """Saved deliveries signed long ago, given out of event order."""
    events = [
        f.event("customer.created", f.customer(f"cus_fw{i}"), id=f"evt_fw{i}", created=LONG_AGO + 10 * i)
        for i in range(n)
    ]
    out = []
    for e in reversed(events):
        env = f.envelope(e, ORIGINAL, t=e["created"])
        out.append(
            Delivery(
                source=f"saved:{e['id']}",
                body=env["body"].encode(),
                headers={
                    **env["headers"],
                    "Host": "old.example",
                    "Content-Type": "application/json",
                },
                received_at=env["received_at"],
            )
        )
    return out


def test_sign_with_resigns_with_a_fresh_timestamp_in_event_order(fresh_handler: Handler) -> None:
    report = forward(saved(), fresh_handler.url, sign_with=HANDLER_SECRET, rate=None, stop_on_error=False)

    assert report.ok and report.summary == {"total": 5, "sent": 5, "ok": 5, "failed": 0}
    assert [r["id"] for r in fresh_handler.received] == [f"evt_fw{i}" for i in range(5)]
    assert all(r["verified"] for r in fresh_handler.received)  # within the handler's 300 s
    assert [r["event_id"] for r in report.results] == [f"evt_fw{i}" for i in range(5)]
    assert all(r["status"] == 200 and r["latency_ms"] >= 0 and r["error"] is None for r in report.results)
    assert HANDLER_SECRET not in json.dumps(report.to_json())


def test_without_sign_with_the_original_headers_go_out(original_handler: Handler) -> None:
    deliveries = saved(3)
    report = forward(deliveries, original_handler.url, sign_with=None, rate=None, stop_on_error=False)

    assert report.ok
    by_id = {r["id"]: r for r in original_handler.received}
    for d in deliveries:
        eid = json.loads(d.body)["id"]
        assert by_id[eid]["signature"] == d.signature and by_id[eid]["verified"]
        assert by_id[eid]["headers"]["host"] != "old.example"  # framing headers are not copied
        assert by_id[eid]["headers"]["content-type"] == "application/json"


def test_stale_original_signature_fails_a_strict_handler(fresh_handler: Handler) -> None:
    fresh_handler.secret = ORIGINAL  # right secret, but the handler has a 300 s tolerance
    report = forward(saved(2), fresh_handler.url, sign_with=None, rate=None, stop_on_error=False)
    assert not report.ok and [r["status"] for r in report.results] == [400, 400]
    assert "handler says no" in (report.results[0]["error"] or "")


def test_non_2xx_continue_or_stop(fresh_handler: Handler) -> None:
    fresh_handler.fail_ids = {"evt_fw1"}
    report = forward(saved(4), fresh_handler.url, sign_with=HANDLER_SECRET, rate=None, stop_on_error=False)
    assert [r["status"] for r in report.results] == [200, 500, 200, 200] and not report.ok

    fresh_handler.received.clear()
    report = forward(saved(4), fresh_handler.url, sign_with=HANDLER_SECRET, rate=50, stop_on_error=True)
    assert [r["status"] for r in report.results] == [200, 500] and report.stopped_early
    assert len(fresh_handler.received) == 2


def test_redirects_are_not_followed(fresh_handler: Handler, original_handler: Handler) -> None:
    fresh_handler.redirect_to = original_handler.url
    report = forward(saved(1), fresh_handler.url, sign_with=HANDLER_SECRET, rate=None, stop_on_error=False)
    assert report.results[0]["status"] == 302 and not report.ok
    assert original_handler.received == []


def test_unreachable_and_unreadable_are_reported_not_raised() -> None:
    from tests.conftest import free_port

    bad = Delivery(source="broken.jsonl:3", body=b"{", error="malformed", error_detail="invalid JSON")
    report = forward(
        [*saved(1), bad],
        f"http://127.0.0.1:{free_port()}/x",
        sign_with=None,
        rate=None,
        stop_on_error=False,
        timeout=2,
    )
    assert [r["status"] for r in report.results] == [None, None]
    assert "cannot reach" in report.results[0]["error"] and "not sent" in report.results[1]["error"]
    assert not report.ok


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1:8000/x", "http://"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(UsageError):
        forward(saved(1), url, sign_with=None, rate=None, stop_on_error=False)


def test_cli_forward_to_with_sign_with(tmp_path: Path, fresh_handler: Handler) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        "".join(
            json.dumps({"received_at": d.received_at, "headers": d.headers, "body": d.body.decode()}) + "\n"
            for d in saved(3)
        )
    )
    args = [
        "replay-webhook",
        str(path),
        "--forward-to",
        fresh_handler.url,
        "--sign-with",
        HANDLER_SECRET,
        "--secret",
        ORIGINAL,
        "--db",
        str(tmp_path / "m.db"),
        "--json",
    ]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert [r["status"] for r in json.loads(result.stdout)["results"]] == [200, 200, 200]

    fresh_handler.fail_ids = {"evt_fw2"}
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 1
    assert HANDLER_SECRET not in result.stdout + result.stderr


def test_sign_with_never_vouches_for_an_unverified_delivery(tmp_path: Path, fresh_handler: Handler) -> None:
    good, forged = saved(2)
    forged.body = forged.body.replace(b"cus_fw", b"cus_XX")  # tampered after signing
    path = tmp_path / "d.jsonl"
    path.write_text(
        "".join(
            json.dumps({"received_at": d.received_at, "headers": d.headers, "body": d.body.decode()}) + "\n"
            for d in (good, forged)
        )
    )
    base = ["replay-webhook", str(path), "--forward-to", fresh_handler.url, "--sign-with", HANDLER_SECRET]
    refused = runner.invoke(app, base, catch_exceptions=False)
    assert refused.exit_code == 3 and "--secret" in refused.stderr  # no way to verify: nothing sent
    result = runner.invoke(app, [*base, "--secret", ORIGINAL, "--json"], catch_exceptions=False)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [r["event_id"] for r in data["results"]] == [json.loads(good.body)["id"]]
    assert [r["reason"] for r in data["not_forwarded"]] == ["bad_signature"]


def test_the_table_prints_what_the_handler_said_as_text_not_markup(
    tmp_path: Path, fresh_handler: Handler
) -> None:
    """rich read "[/x]" in a cell as a closing tag and raised (exit 70)."""
    path = tmp_path / "d.jsonl"
    path.write_text(
        "".join(
            json.dumps({"received_at": d.received_at, "headers": d.headers, "body": d.body.decode()}) + "\n"
            for d in saved(2)
        )
    )
    fresh_handler.fail_ids = {"evt_fw1"}
    fresh_handler.refusal = b"[/x] [bold]no[/bold]"
    result = runner.invoke(
        app,
        ["replay-webhook", str(path), "--forward-to", fresh_handler.url, "--sign-with", HANDLER_SECRET,
         "--secret", ORIGINAL, "--db", str(tmp_path / "m.db")],
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.stderr
    assert "[/x] [bold]no[/bold]" in result.stdout.replace("\n", "")

