"""The deliveries `webhook probe` sends: each one a question to the user's handler.

Every event is recognisable (`evt_stripectl_probe_<hex>`, and a
`stripectl_probe` note in `data.object`), because the valid ones pass the
handler's signature check and reach its business logic.

Signing is Stripe's scheme, as stripe-python's `WebhookSignature` implements it
(`_compute_signature` / `generate_signature_header` in stripe/_webhook.py):
HMAC-SHA256, keyed with the endpoint secret, over `f"{t}.{body}"` in UTF-8,
sent as `t=<unix>,v1=<hex>`. It is computed here with `hmac` rather than by
the SDK because most cases need a header the SDK never builds (two v1
signatures, a v0 only, a tampered body) and the probe must not cost the
0.3 s of `import stripe`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MUST_ACCEPT = "must_accept"
MUST_REFUSE = "must_refuse"

DEFAULT_TYPE = "balance.available"  # informational: no object id, changes nothing
UNKNOWN_TYPE = "stripectl_probe.unknown_type"
NOTE = "stripectl webhook probe: a test delivery, not a real event"
# What a pretty-printing, non-ASCII Stripe body looks like (Stripe sends UTF-8,
# unescaped, indented): a handler that parses and re-serialises before
# verifying changes these bytes.
UNICODE_NOTE = NOTE + " — Zoë Ångström, 東京, ✓"


def hmac_v1(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={hmac_v1(secret, timestamp, body)}"


# The headers of a case as a function of the moment it is sent: each delivery
# is signed right before it leaves, as Stripe does, so a slow handler never
# turns the later "valid" cases into expired ones.
Headers = Callable[[int], dict[str, str]]


@dataclass(frozen=True)
class Case:
    name: str
    category: str  # MUST_ACCEPT | MUST_REFUSE
    description: str
    body: bytes
    headers_at: Headers
    event_id: str | None = None
    concurrent_with: str | None = None  # sent at the same moment as that case


def new_event_id() -> str:
    return f"evt_stripectl_probe_{secrets.token_hex(12)}"


def event(event_type: str, *, event_id: str, created: int, api_version: str | None,
          note: str = NOTE) -> dict[str, Any]:
    """A Stripe-shaped snapshot event that says what it is."""
    if event_type == "balance.available":
        obj: dict[str, Any] = {
            "object": "balance",
            "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
            "livemode": False,
            "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
        }
    else:
        noun = event_type.rsplit(".", 1)[0]
        obj = {
            "id": f"stripectl_probe_{event_id[-12:]}",
            "object": noun,
            "livemode": False,
            "metadata": {"stripectl_probe": "true"},
        }
    obj["stripectl_probe"] = note
    return {
        "id": event_id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def compact(evt: dict[str, Any]) -> bytes:
    return json.dumps(evt, separators=(",", ":")).encode()


def pretty(evt: dict[str, Any]) -> bytes:
    return json.dumps(evt, indent=2, ensure_ascii=False).encode("utf-8")


def build_cases(
    *,
    secret: str,
    event_type: str,
    now: int,
    tolerance: int,
    api_version: str | None,
) -> list[Case]:
    """The bounded set of deliveries, in the order they are sent."""
    json_ct = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) stripectl-probe",
    }

    def signed(body: bytes, *, age: int = 0, key: str = secret) -> Headers:
        return lambda t: {**json_ct, "Stripe-Signature": signature_header(key, t - age, body)}

    def fresh(note: str = NOTE, etype: str = event_type) -> tuple[str, dict[str, Any]]:
        eid = new_event_id()
        return eid, event(etype, event_id=eid, created=now, api_version=api_version, note=note)

    cases: list[Case] = []
    eid, evt = fresh()
    valid_body = compact(evt)
    cases.append(Case("valid", MUST_ACCEPT, "a valid signed delivery", valid_body,
                      signed(valid_body), eid))
    pid, pevt = fresh(UNICODE_NOTE)
    pbody = pretty(pevt)
    cases.append(Case(
        "pretty_unicode", MUST_ACCEPT,
        "valid, pretty-printed with non-ASCII text (as Stripe sends it): fails if the body "
        "is parsed and re-serialised before verifying", pbody, signed(pbody), pid))
    rid, revt = fresh()
    rbody = compact(revt)
    other = "whsec_stripectl_probe_rolled_" + secrets.token_hex(8)
    cases.append(Case(
        "secret_roll", MUST_ACCEPT,
        "two v1 signatures, only the second with your secret (a secret roll)", rbody,
        lambda t: {**json_ct, "Stripe-Signature":
                   f"t={t},v1={hmac_v1(other, t, rbody)},v1={hmac_v1(secret, t, rbody)}"}, rid))
    # Stripe re-sends the same event (same body) with a new signature time.
    cases.append(Case(
        "duplicate", MUST_ACCEPT, "the 'valid' delivery sent again (Stripe retries)",
        valid_body, signed(valid_body), eid))
    cid, cevt = fresh()
    cbody = compact(cevt)
    cases.append(Case("concurrent_1", MUST_ACCEPT,
                      "one of two copies of one event sent at the same moment",
                      cbody, signed(cbody), cid))
    cases.append(Case("concurrent_2", MUST_ACCEPT,
                      "the other concurrent copy (never a 5xx)",
                      cbody, signed(cbody), cid, concurrent_with="concurrent_1"))
    uid, uevt = fresh(etype=UNKNOWN_TYPE)
    ubody = compact(uevt)
    cases.append(Case(
        "unknown_type", MUST_ACCEPT,
        f"an event type your handler does not know ({UNKNOWN_TYPE}): answer 2xx, or Stripe "
        "retries it for days", ubody, signed(ubody), uid))

    def forged(name: str, description: str, body: bytes, headers: Headers,
               event_id: str) -> None:
        cases.append(Case(name, MUST_REFUSE, description, body, headers, event_id))

    nid, nevt = fresh()
    forged("no_signature", "no Stripe-Signature header", compact(nevt),
           lambda t: dict(json_ct), nid)
    gid, gevt = fresh()
    garbled = "stripectl-probe-garbled-" + secrets.token_hex(16)
    forged("garbled_signature", "a Stripe-Signature that is not t=...,v1=...", compact(gevt),
           lambda t: {**json_ct, "Stripe-Signature": garbled}, gid)
    vid, vevt = fresh()
    vbody = compact(vevt)
    # The right HMAC, but under the v0 scheme only: Stripe's test-only scheme,
    # never a valid signature.
    forged("v0_only", "only a v0 signature (the right HMAC under the wrong scheme)", vbody,
           lambda t: {**json_ct, "Stripe-Signature": f"t={t},v0={hmac_v1(secret, t, vbody)}"},
           vid)
    tid, tevt = fresh()
    tbody = compact(tevt)
    tampered = tbody.replace(b'"amount":0', b'"amount":9', 1)
    if tampered == tbody:  # a --type without amounts: change the note's first letter
        tampered = tbody.replace(b"stripectl webhook probe", b"Stripectl webhook probe", 1)
    forged("tampered_body", "the body changed by one byte after signing", tampered,
           signed(tbody), tid)
    wid, wevt = fresh()
    wbody = compact(wevt)
    forged("wrong_secret", "the right body signed with another secret", wbody,
           signed(wbody, key="whsec_stripectl_probe_other_" + secrets.token_hex(8)), wid)
    age = tolerance + 60
    oid, oevt = fresh()
    oevt["created"] = now - age
    obody = compact(oevt)
    forged("expired", f"signed {age} s ago (older than a {tolerance} s tolerance)",
           obody, signed(obody, age=age), oid)
    return cases
