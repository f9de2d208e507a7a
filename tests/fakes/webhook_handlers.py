"""Users' webhook handlers, right and wrong, on 127.0.0.1 for `webhook probe` tests.

Each mode is a mistake seen in real integrations:

- correct:      stripe-python's Webhook.construct_event over the raw body (default
                300 s tolerance), 400 on a bad signature, duplicates answered 200;
- no_verify:    parses the JSON and answers 200 without checking anything;
- reserialize:  JSON middleware: parses the body, re-serialises it and verifies that;
- dup_500:      verifies correctly, but a second delivery of an event id is a 500
                (a unique constraint surfacing as an error);
- redirect:     every request is answered 308 to another path (a trailing-slash rule);
- slow:         correct, but sleeps `delay` seconds before answering;
- no_tolerance: verifies the HMAC but never the age (tolerance=None);
- echo:         correct, but puts the received Stripe-Signature in its 400 body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import stripe

MODES = ("correct", "no_verify", "reserialize", "dup_500", "redirect", "slow", "no_tolerance",
         "echo")


class HandlerApp:
    def __init__(self, mode: str, secret: str, *, delay: float = 0.0) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.secret = secret
        self.delay = delay
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.received: list[dict[str, Any]] = []  # what reached "business logic"

    def handle(self, raw: bytes, signature: str | None) -> tuple[int, bytes, dict[str, str]]:
        if self.mode == "redirect":
            return 308, b"", {"Location": "/webhooks/stripe/"}
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "no_verify":
            evt = json.loads(raw)
        else:
            payload = raw
            if self.mode == "reserialize":
                # Like JSON.stringify(req.body): compact, ASCII-escaped. Equal
                # to a compact ASCII body, never to what Stripe really sends.
                payload = json.dumps(json.loads(raw), separators=(",", ":")).encode()
            try:
                if self.mode == "no_tolerance":
                    stripe.WebhookSignature.verify_header(
                        payload.decode(), signature, self.secret, tolerance=None
                    )
                    evt = json.loads(payload)
                else:
                    evt = stripe.Webhook.construct_event(payload, signature or "", self.secret
                                                         ).to_dict()
            except (stripe.SignatureVerificationError, ValueError) as exc:
                body = {"error": str(exc)}
                if self.mode == "echo":
                    body["received_signature"] = signature or ""
                return 400, json.dumps(body).encode(), {}
        with self.lock:
            duplicate = evt["id"] in self.seen
            self.seen.add(evt["id"])
            if not duplicate:
                self.received.append(evt)
        if duplicate and self.mode == "dup_500":
            return 500, b'{"error": "UNIQUE constraint failed: events.id"}', {}
        return 200, b'{"received": true}', {}


@contextmanager
def serve_handler(app: HandlerApp) -> Iterator[str]:
    """The handler on a free loopback port; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body, headers = app.handle(raw, self.headers.get("Stripe-Signature"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
