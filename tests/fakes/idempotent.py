"""A fake Stripe that honours the idempotency rules and injects faults.

localstripe ignores Idempotency-Key; this fake does what Stripe documents:

* the first request with a key executes and its answer (status + body, 500s
  and card declines included) is saved for the key;
* the same key with the same parameters gets the saved answer again, with
  `Idempotent-Replayed: true`;
* the same key with other parameters gets 400 `idempotency_error`;
* the same key while its first request is still executing gets 409
  (`idempotency_key_in_use`), and nothing is saved for that request;
* validation failures and 429s are not saved.

Faults (`faults`, consumed one per first execution): "drop" (execute, save,
then close the socket without answering), "hang" (execute, save, then hold
the answer until `release()`), "500" (save a 500 with Stripe-Should-Retry:
false), "401" (an auth failure, not saved). `rate_limit = n` answers the next n POSTs 429 with
Stripe-Should-Retry: true. `delay` slows every execution (for races).

Serves POST /v1/payment_intents, POST /v1/checkout/sessions and GET of both.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.base import FakeStripe, Request, Response, error

DECLINES = {
    "pm_card_visa_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeCustomerFail": "generic_decline",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "insufficient_funds",
}
NEEDS_AUTH = {"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"}
CREATE_PATHS = {"/v1/payment_intents": "pi", "/v1/checkout/sessions": "cs"}


@dataclass
class Saved:
    fingerprint: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class IdempotentStripe(FakeStripe):
    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.faults: list[str] = []
        self.rate_limit = 0
        self.objects: dict[str, dict[str, Any]] = {}
        self.forms: dict[str, dict[str, Any]] = {}  # object id -> the form that created it
        self.saved: dict[str, Saved] = {}
        self.in_flight: set[str] = set()
        self.replays = 0
        self.conflicts = 0  # 409s
        self.idempotency_errors = 0  # 400 idempotency_error
        self._released = threading.Event()
        self._seq = 0
        # Called as a first execution starts: lets a test look at the client's
        # state while its request is on the wire.
        self.on_execute: Callable[[Request], None] | None = None

    # --- test helpers ---------------------------------------------------------

    def release(self) -> None:
        """Let every hanging answer go (call before stopping the server)."""
        self._released.set()

    def created(self, prefix: str = "") -> list[dict[str, Any]]:
        return [o for i, o in self.objects.items() if i.startswith(prefix)]

    def keys_sent(self, path: str = "/v1/payment_intents") -> list[str]:
        return [
            r.headers.get("idempotency-key", "")
            for r in self.requests
            if r.method == "POST" and r.path == path
        ]

    # --- routing --------------------------------------------------------------

    def route(self, req: Request) -> Response:
        if req.method == "POST" and req.path in CREATE_PATHS:
            return self._post(req)
        if req.method == "GET":
            for path in CREATE_PATHS:
                if req.path.startswith(path + "/"):
                    obj = self.objects.get(req.path[len(path) + 1 :])
                    if obj is None:
                        return error(404, "No such object", code="resource_missing")
                    return Response(200, obj)
        return error(404, f"Unrecognized request URL ({req.method}: {req.path})")

    def _post(self, req: Request) -> Response:
        key = req.headers.get("idempotency-key", "")
        fingerprint = req.path + "\n" + json.dumps(req.form, sort_keys=True)
        with self.lock:
            if self.rate_limit > 0:
                self.rate_limit -= 1
                resp = error(429, "Too many requests", type_="invalid_request_error",
                             code="rate_limit")
                resp.headers["Stripe-Should-Retry"] = "true"
                return resp
            saved = self.saved.get(key)
            if saved is not None:
                if saved.fingerprint != fingerprint:
                    self.idempotency_errors += 1
                    return error(
                        400,
                        "Keys for idempotent requests can only be used with the same "
                        f"parameters they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                        type_="idempotency_error",
                    )
                self.replays += 1
                return Response(
                    saved.status, saved.body, {**saved.headers, "Idempotent-Replayed": "true"}
                )
            if key in self.in_flight:
                self.conflicts += 1
                return error(
                    409,
                    "There is currently another in-progress request using this idempotent "
                    "key (that probably means you submitted twice, and the other request "
                    "is still going through). Please try again later.",
                    code="idempotency_key_in_use",
                )
            self.in_flight.add(key)
            fault = self.faults.pop(0) if self.faults else None
        try:
            if self.on_execute is not None:
                self.on_execute(req)
            if self.delay:
                time.sleep(self.delay)
            status, body = self._execute(req, fault)
        finally:
            with self.lock:
                self.in_flight.discard(key)
        if status in (400, 401) and body["error"].get("type") == "invalid_request_error":
            return Response(status, body)  # validation and auth failures are not saved
        headers = {"Stripe-Should-Retry": "false"} if status >= 500 else {}
        with self.lock:
            self.saved[key] = Saved(fingerprint, status, body, headers)
        if fault == "drop":
            return Response(drop_connection=True)
        if fault == "hang":
            self._released.wait(30)
        return Response(status, body, headers)

    # --- execution ------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        with self.lock:
            self._seq += 1
            return f"{prefix}_fake{self._seq:04d}"

    def _execute(self, req: Request, fault: str | None) -> tuple[int, dict[str, Any]]:
        if fault == "401":
            return 401, {"error": {"type": "invalid_request_error",
                                   "message": "Invalid API Key provided: sk_test_****0000"}}
        if fault == "500":
            return 500, {"error": {"type": "api_error", "message": "An unknown error occurred"}}
        if CREATE_PATHS[req.path] == "pi":
            return self._payment_intent(req.form)
        return self._checkout_session(req.form)

    def _payment_intent(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            amount = int(form.get("amount", ""))
        except ValueError:
            return 400, {"error": {"type": "invalid_request_error", "param": "amount",
                                   "message": "Invalid integer"}}
        pm = form.get("payment_method")
        confirm = form.get("confirm") == "true"
        pid = self._next_id("pi")
        pi: dict[str, Any] = {
            "id": pid,
            "object": "payment_intent",
            "amount": amount,
            "currency": form.get("currency"),
            "customer": form.get("customer"),
            "description": form.get("description"),
            "metadata": form.get("metadata") or {},
            "payment_method": pm,
            "payment_method_types": form.get("payment_method_types") or ["card"],
            "client_secret": f"{pid}_secret_fakeClientSecretValue",
            "created": int(time.time()),
            "livemode": False,
            "status": "requires_payment_method",
            "next_action": None,
            "last_payment_error": None,
        }
        self.objects[pid] = pi
        self.forms[pid] = form
        if pm and not confirm:
            pi["status"] = "requires_confirmation"
        elif pm and confirm:
            if pm in DECLINES:
                pi["last_payment_error"] = {
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": DECLINES[pm],
                    "message": "Your card was declined.",
                }
                pi["payment_method"] = None
                return 402, {
                    "error": {
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": DECLINES[pm],
                        "message": "Your card was declined.",
                        "payment_intent": pi,
                    }
                }
            if pm in NEEDS_AUTH:
                pi["status"] = "requires_action"
                pi["next_action"] = {"type": "use_stripe_sdk"}
            else:
                pi["status"] = "succeeded"
        return 200, pi

    def _checkout_session(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if form.get("mode") not in ("payment", "subscription", "setup"):
            return 400, {"error": {"type": "invalid_request_error", "param": "mode",
                                   "message": "Invalid mode"}}
        sid = self._next_id("cs_test")
        created = int(time.time())
        cs = {
            "id": sid,
            "object": "checkout.session",
            "mode": form["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "url": f"https://checkout.stripe.com/c/pay/{sid}",
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "customer": form.get("customer"),
            "customer_email": form.get("customer_email"),
            "metadata": form.get("metadata") or {},
            "created": created,
            "expires_at": created + 86400,
            "livemode": False,
            "subscription": None,
            "payment_intent": None,
        }
        self.objects[sid] = cs
        self.forms[sid] = form
        return 200, cs


# --- helpers for the tests that drive stripectl against this fake -------------

FAKE_KEY = "sk_test_stripectl_fake_0000"
Fake = tuple[IdempotentStripe, str]  # what the `fake` fixtures yield: (app, base URL)


def conn_args(url: str, db: object, *, retries: int = 2, timeout: float = 10) -> list[str]:
    """The CLI flags that point a command at a fake and a mirror file."""
    return [
        "--api-key", FAKE_KEY, "--api-base", url, "--db", str(db),
        "--network-retries", str(retries), "--timeout", str(timeout),
    ]


def _url_rows(db: object, sql: str) -> list[dict[str, Any]] | None:
    """A postgresql:// mirror read through the store (None for a file)."""
    if not str(db).startswith("postgresql://"):
        return None
    from stripectl.store import open_store

    store = open_store(str(db), dry_run=True)
    try:
        return store.query(sql)
    finally:
        store.close()


def ledger_rows(db: object) -> list[dict[str, Any]]:
    """Read-only look at the ledger from a separate connection (what another process sees)."""
    import sqlite3

    if (pg := _url_rows(db, "SELECT * FROM idempotency_keys ORDER BY created_at, key")) is not None:
        return pg

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = conn.execute("SELECT * FROM idempotency_keys ORDER BY created_at, key")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def mirror_rows(db: object, table: str) -> list[dict[str, Any]]:
    import sqlite3

    if (pg := _url_rows(db, f"SELECT * FROM {table} ORDER BY id")) is not None:
        return pg

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = conn.execute(f"SELECT * FROM {table} ORDER BY id")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()
