"""Verify one delivery and pull out what ordering and the mirror need.

The signature is checked over the exact raw body by stripe-python (via the
gateway) before the body is parsed. Freshness is judged between the signed
timestamp and the envelope's `received_at`, never against now: a saved
delivery is old by definition.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _esc
from operator import attrgetter
from typing import Any

from stripectl.webhooks import json_parse
from stripectl.webhooks.delivery import Delivery
from stripectl.webhooks.facts import prev_status, row_for, table_for, touched_subscription
from stripectl.webhooks.storable import METADATA_DEPTH as METADATA_DEPTH
from stripectl.webhooks.storable import bad_text, encoded_again, nul_text, out_of_range, unstorable

# Why a delivery can be rejected (README "Rejection reasons").
REASONS = {
    "bad_signature": "no v1 signature matches any given secret (tampered body or wrong secret)",
    "no_signature": "no Stripe-Signature header",
    "garbled_signature": "Stripe-Signature header cannot be parsed",
    "expired": "signed more than --tolerance seconds before it was received",
    "future_timestamp": "signed more than --tolerance seconds after it was received",
    "malformed": (
        "not valid JSON, not a Stripe event (no id/type/created/data.object),"
        " or values the mirror cannot store"
    ),
    "truncated": "the input ends before the body does",
    "empty": "empty file",
    "not_utf8": "the body is not UTF-8",
    "too_large": "the body is larger than --max-body-bytes",
    "unsigned": "a bare event without a signature (accepted only with --unsigned)",
    "livemode_mismatch": "a live-mode event on a test-mode mirror",
}

# Why a verified delivery is stored but not applied (README "Outcomes"): the
# `ignored` outcome's reasons.
IGNORED = {
    "unhandled event type": "a type stripectl does not mirror",
    "thin_event": (
        "a thin event (v2.core.event, sent by event destinations): it carries a reference,"
        " not a snapshot; fetch the object to see its state"
    ),
    "test_mode_event": (
        "a test-mode event on a live-mode mirror (a live Connect endpoint also receives"
        " test events of accounts connected in both modes); never applied"
    ),
}




@dataclass(slots=True)
class Inspected:
    """One delivery after verification: flat, with what `events` stores and
    what ordering and the mirror need (the Delivery itself is not kept).

    Flat fields keep the trip back from a worker process cheap (see
    services/parallel._packed): pickling nested dataclasses cost ~15 us a
    delivery.
    """

    delivery_id: str
    source: str
    received_at: int | None
    headers: str  # JSON text, sorted keys: the `events.headers` column
    body: bytes
    trusted: bool = False
    unsigned: bool = False
    verified: bool = False
    table: str | None = None  # mirror table of a handled type, else None (ignored)
    row: dict[str, Any] | None = None
    prev_status: str | None = None
    touched_sub: str | None = None
    event_id: str | None = None
    type: str | None = None
    created: int | None = None
    livemode: bool | None = None
    object_id: str | None = None
    api_version: str | None = None
    reason: str | None = None  # set: rejected
    detail: str | None = None
    note: str | None = None
    ignore: str | None = None  # set: verified, stored, not applied (a key of IGNORED)
    claimed_id: str | None = None  # a rejected delivery's event id, as its body claims it

    @property
    def rejected(self) -> bool:
        return self.reason is not None

    def reject(self, reason: str, detail: str | None = None) -> Inspected:
        self.reason, self.detail = reason, detail or REASONS.get(reason)
        # A rejected delivery touches no subscription: the access report
        # would look up an id that may not even be storable text.
        self.touched_sub = None
        return self


fields_of = attrgetter(*Inspected.__dataclass_fields__)  # in __init__'s order: Inspected(*fields)


def headers_json(headers: dict[str, str]) -> str:
    """`json.dumps(headers, sort_keys=True)` for str -> str, without building an
    encoder per call (1.1 -> 0.6 us; tests/test_inspect_fast.py checks it)."""
    return (
        "{"
        + ", ".join(f"{_esc(k)}: {_esc(v)}" for k, v in sorted(headers.items()))
        + "}"
    )


def delivery_id(delivery: Delivery, signature: str | None = None) -> str:
    """sha256 of the Stripe-Signature header, a newline and the raw body."""
    if signature is None:
        signature = delivery.signature
    try:
        head = (signature or "").encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # "\ud800": no byte it stands for; still one id per header
        head = (signature or "").encode("utf-8", "surrogatepass")
    h = hashlib.sha256(head)
    h.update(b"\n")
    h.update(delivery.body)
    return h.hexdigest()


_verify: Any = None  # gateway.signatures, imported on first use: it imports stripe


def inspect(
    delivery: Delivery,
    *,
    secrets: list[str],
    tolerance: int,
    max_body_bytes: int,
) -> Inspected:
    global _verify
    if _verify is None:
        from stripectl.gateway import signatures as _verify

    signature = delivery.signature
    # The sorted-headers JSON is computed here, i.e. in a worker process for
    # large inputs, not in the main process that writes SQLite.
    result = Inspected(
        delivery_id(delivery, signature),
        delivery.source,
        delivery.received_at,
        headers_json(delivery.headers),
        delivery.body,
        delivery.trusted,
        delivery.unsigned,
    )
    if delivery.error:
        if delivery.error == "unsigned":
            _claim(result, delivery.body, max_body_bytes)
        return result.reject(delivery.error, delivery.error_detail)
    body = delivery.body
    if len(body) > max_body_bytes:
        return result.reject("too_large", f"{len(body)} bytes > {max_body_bytes}")
    if not body or body.isspace():  # what `not body.strip()` says, without a copy
        return result.reject("empty", "empty body")
    try:
        text = delivery.body_text()
    except UnicodeDecodeError:
        return result.reject("not_utf8")

    if delivery.trusted:
        result.verified = True
    elif delivery.unsigned:
        result.note = "unverified: accepted with --unsigned"
    else:
        try:
            signed_at = _verify.verify(text, signature, secrets)
        except _verify.SignatureRejected as exc:
            _claim(result, body, max_body_bytes)
            return result.reject(exc.reason, exc.detail)
        result.verified = True
        if delivery.received_at is None:
            result.note = "no received_at: freshness not checked"
        elif delivery.received_at - signed_at > tolerance:
            _claim(result, body, max_body_bytes)
            return result.reject(
                "expired", f"signed {delivery.received_at - signed_at}s before it was received"
            )
        elif signed_at - delivery.received_at > tolerance:
            _claim(result, body, max_body_bytes)
            return result.reject(
                "future_timestamp",
                f"signed {signed_at - delivery.received_at}s after it was received",
            )

    try:
        event = json_parse.loads(body)  # == text, which verify() needed as str
    except json.JSONDecodeError as exc:
        return result.reject("malformed", f"invalid JSON: {exc.msg} at {exc.pos}")
    except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
        return result.reject("malformed", f"unreadable JSON: {str(exc)[:80]}")
    if not isinstance(event, dict):
        return result.reject("malformed", "body is not a JSON object")
    # What is set on `result` is stored in `events` even when the delivery is
    # rejected further down: only values SQLite can store.
    event_id, event_type = event.get("id"), event.get("type")
    result.event_id = event_id if isinstance(event_id, str) else None
    result.type = event_type if isinstance(event_type, str) else None
    # JSON spells a NUL character only as \u0000: one scan of the raw body
    # spares every delivery without one the per-value checks.
    nul = b"\\u0000" in body
    problem = bad_text(result.event_id) or bad_text(result.type)
    if nul and problem is None:
        problem = nul_text(result.event_id, result.type)
    if problem is not None:
        result.event_id = result.type = None
        return result.reject("malformed", problem)
    if not result.event_id or not result.type:
        return result.reject("malformed", "event without id or type")
    if event.get("object") == "v2.core.event" or (
        result.type.startswith(("v1.", "v2.")) and not isinstance(event.get("data"), dict)
    ):
        return _thin(result, event)
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        return result.reject("malformed", "event without an integer created")
    if out_of_range(created, int):
        return result.reject("malformed", f"created is not a 64-bit number: {str(created)[:40]}")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return result.reject("malformed", "event without data.object")
    object_id = obj.get("id")
    result.table = table_for(result.type)
    if result.table is None:
        # Not mirrored: an id is not needed, and many objects have none (a
        # Balance, the upcoming invoice, cash balances, tax settings, billing
        # alerts, entitlement summaries, discounts before 2020).
        result.ignore = "unhandled event type"
        if not isinstance(object_id, str) or bad_text(object_id) is not None or (
            nul and nul_text(object_id)
        ):
            object_id = None
    else:
        if not isinstance(object_id, str):
            return result.reject("malformed", "event without data.object.id")
        problem = bad_text(object_id) or (nul_text(object_id) if nul else None)
        if problem is not None:
            return result.reject("malformed", problem)
        problem = encoded_again(obj)
        if problem is not None:
            return result.reject("malformed", problem)
        try:
            result.row = row_for(result.table, obj, result.type)
        except (AttributeError, TypeError, ValueError, KeyError, OverflowError, RecursionError) as exc:
            # A field of an unexpected type (metadata a list, quantity "abc" or
            # Infinity): this delivery is malformed, the rest of the batch goes
            # on. (RecursionError: a net only; the bounds above should make it
            # unreachable.)
            return result.reject("malformed", f"unexpected data.object shape: {str(exc)[:80]}")
        result.prev_status = prev_status(event)
        result.touched_sub = touched_subscription(result.type, result.row)
    result.created = created
    result.livemode = bool(event.get("livemode"))
    result.object_id = object_id
    api_version = event.get("api_version")
    result.api_version = (
        api_version
        if isinstance(api_version, str) and not bad_text(api_version)
        and not (nul and nul_text(api_version))
        else None
    )
    values = [result.prev_status, *(result.row or {}).values()]
    problem = unstorable(values) or (nul_text(*values) if nul else None)
    if problem is not None:
        return result.reject("malformed", problem)
    return result


def _thin(result: Inspected, event: dict[str, Any]) -> Inspected:
    """A thin event: verified like any delivery, stored, never applied. Its
    `created` is an RFC 3339 time, its object a reference (related_object)."""
    result.ignore = "thin_event"
    result.livemode = bool(event.get("livemode"))
    created = event.get("created")
    if isinstance(created, str):
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
            # Stripe writes UTC ("...Z"); a time without an offset is read as UTC
            # too, never as this machine's local time.
            result.created = int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
        except (ValueError, OverflowError, OSError):
            result.created = None
    related = event.get("related_object")
    related_id = related.get("id") if isinstance(related, dict) else None
    if isinstance(related_id, str) and bad_text(related_id) is None:
        result.object_id = related_id
    return result


def _claim(result: Inspected, body: bytes, max_body_bytes: int) -> None:
    """For a delivery rejected before its body is trusted: the event id it
    claims, so the operator can look it up in the Dashboard. Reported as
    unverified; only on this (rare) path is the body parsed."""
    if len(body) > max_body_bytes:
        return
    try:
        event = json_parse.loads(body)
    except (ValueError, RecursionError):
        return
    claimed = event.get("id") if isinstance(event, dict) else None
    if isinstance(claimed, str) and 0 < len(claimed) <= 255 and bad_text(claimed) is None:
        result.claimed_id = claimed
