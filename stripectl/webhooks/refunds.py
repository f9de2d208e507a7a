"""Refunds, charges and the money side of payment intents, in the mirror.

Event types (README "Handled event types"):

* `refund.created` / `refund.updated` / `refund.failed` and
  `charge.refund.updated`: a Refund -> the `refunds` table;
* `charge.refunded`: a Charge -> the `charges` table;
* `payment_intent.*` (and `payment_intent.amount_capturable_updated`): a
  PaymentIntent -> `payment_intents` with its money columns.

Both payload shapes: before 2022-11-15 a Charge embeds its refunds as a list
object (`charge.refunds.data`) and a PaymentIntent embeds its charges
(`payment_intent.charges.data`); from 2022-11-15 on a Charge's `refunds` is
not expanded and a PaymentIntent has only `latest_charge` (an id, or an
object when expanded). Embedded objects are applied as snapshots of the same
moment as the event, each with the same newest-wins rule as its own events.

The payment intent's `amount_captured`, `amount_refunded` and `refund_state`
are derived after every such event from what the mirror then holds (its
charges and refunds), so they do not depend on delivery order either.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from stripectl.redact import redact
from stripectl.webhooks import snapshots

if TYPE_CHECKING:  # inspect imports facts, which imports this module
    from stripectl.webhooks.inspect import Inspected

REFUND_TYPES = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)
CHARGE_TYPES = frozenset({"charge.refunded"})
PAYMENT_INTENT_TYPES = frozenset({"payment_intent.amount_capturable_updated"})
HANDLED = REFUND_TYPES | CHARGE_TYPES | PAYMENT_INTENT_TYPES
TABLES = frozenset({"refunds", "charges", "payment_intents"})

# What the row of an event carries besides its columns: the embedded
# snapshots, as JSON text (a row holds scalars only). Popped before writing.
EMBEDDED = "_embedded"
ACTIVE = frozenset({"pending", "requires_action", "succeeded"})
_LIMIT = 2**63


class MoneyView(Protocol):
    def get(self, table: str, row_id: str) -> dict[str, Any] | None: ...

    def put(self, table: str, row: dict[str, Any]) -> None: ...

    def rows_where(self, table: str, column: str, values: list[str]) -> list[dict[str, Any]]: ...


ApplyOne = Callable[..., tuple[str, str | None]]


def table_for(event_type: str) -> str | None:
    if event_type in REFUND_TYPES:
        return "refunds"
    if event_type in CHARGE_TYPES:
        return "charges"
    if event_type in PAYMENT_INTENT_TYPES:
        return "payment_intents"
    return None


# --- rows -------------------------------------------------------------------


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    """An amount or a time: an integer within 64 bits, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not an integer: {str(value)[:40]}")
    if not -_LIMIT <= value < _LIMIT:
        raise ValueError(f"not a 64-bit number: {str(value)[:40]}")
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a string: {str(value)[:40]}")
    value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError (a ValueError)
    return value


def _metadata(value: Any) -> dict[str, Any]:
    if value is None or value == []:  # very old payloads render empty metadata as []
        return {}
    if not isinstance(value, dict):
        raise ValueError("metadata is not an object")
    for k, v in value.items():
        _text(k)
        if not isinstance(v, str | int | float | bool | type(None)):
            raise ValueError("metadata values must be scalars")
        if isinstance(v, str):
            _text(v)
    return value


def refund_row(refund: dict[str, Any]) -> dict[str, Any]:
    metadata = _metadata(refund.get("metadata"))
    ref = metadata.get("refund_ref")
    return {
        "id": _text(refund["id"]),
        "payment_intent": _text(_id(refund.get("payment_intent"))),
        "charge": _text(_id(refund.get("charge"))),
        "amount": _int(refund.get("amount")),
        "currency": _text(refund.get("currency")),
        "status": _text(refund.get("status")),
        "reason": _text(refund.get("reason")),
        "failure_reason": _text(refund.get("failure_reason")),
        "refund_ref": ref if isinstance(ref, str) else None,
        # Masked like every mirror table's metadata (snapshots._metadata).
        "metadata": redact(json.dumps(metadata, sort_keys=True, separators=(",", ":"))),
        "created": _int(refund.get("created")),
        # A Refund carries no livemode: the event's (or the API key's) is filled in.
        "livemode": int(bool(refund["livemode"])) if "livemode" in refund else None,
    }


def charge_row(charge: dict[str, Any]) -> dict[str, Any]:
    amount = _int(charge.get("amount"))
    captured = charge.get("captured")
    amount_captured = _int(charge.get("amount_captured"))
    if amount_captured is None and captured:  # before amount_captured existed (2019)
        amount_captured = amount
    return {
        "id": _text(charge["id"]),
        "payment_intent": _text(_id(charge.get("payment_intent"))),
        "amount": amount,
        "amount_captured": amount_captured,
        "amount_refunded": _int(charge.get("amount_refunded")),
        "captured": int(bool(captured)),
        "refunded": int(bool(charge.get("refunded"))),
        "currency": _text(charge.get("currency")),
        "status": _text(charge.get("status")),
        "created": _int(charge.get("created")),
        "livemode": int(bool(charge.get("livemode"))),
    }


def payment_intent_columns(pi: dict[str, Any]) -> dict[str, Any]:
    """The payment_intents row of a PaymentIntent, money columns included
    (for API answers: `payments capture` / `cancel`)."""
    charges = _embedded_list(pi.get("charges"))
    latest = _id(pi.get("latest_charge")) or (_id(charges[0]) if charges else None)
    return {
        **snapshots.payment_intent_row(pi),
        "amount_capturable": _int(pi.get("amount_capturable")),
        "amount_received": _int(pi.get("amount_received")),
        "capture_method": _text(pi.get("capture_method")),
        "latest_charge": _text(latest),
        "canceled_at": _int(pi.get("canceled_at")),
        "cancellation_reason": _text(pi.get("cancellation_reason")),
    }


def _embedded_list(value: Any) -> list[dict[str, Any]]:
    """`{"object": "list", "data": [...]}` (older shapes), else nothing."""
    if not isinstance(value, dict):
        return []
    data = value.get("data")
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]


def _charge_with_refunds(charge: dict[str, Any], pi_id: str | None) -> list[list[Any]]:
    row = charge_row(charge)
    if row["payment_intent"] is None and pi_id is not None:
        row["payment_intent"] = pi_id
    out: list[list[Any]] = [["charges", row]]
    for refund in _embedded_list(charge.get("refunds")):
        r = refund_row(refund)
        r["charge"] = r["charge"] or row["id"]
        r["payment_intent"] = r["payment_intent"] or row["payment_intent"]
        out.append(["refunds", r])
    return out


def event_row(table: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The row an event puts in `table`, with its embedded snapshots (if any)
    under EMBEDDED. Raises ValueError on a shape the mirror cannot store."""
    embedded: list[list[Any]] = []
    if table == "refunds":
        row = refund_row(obj)
    elif table == "charges":
        pairs = _charge_with_refunds(obj, None)
        row, embedded = pairs[0][1], pairs[1:]
    else:
        row = payment_intent_columns(obj)
        for charge in _embedded_list(obj.get("charges")):
            embedded.extend(_charge_with_refunds(charge, row["id"]))
        latest = obj.get("latest_charge")
        if isinstance(latest, dict) and isinstance(latest.get("id"), str):  # expanded
            embedded.extend(_charge_with_refunds(latest, row["id"]))
    row[EMBEDDED] = json.dumps(embedded, separators=(",", ":"))
    return row


# --- applying ---------------------------------------------------------------


def apply(
    view: MoneyView, ins: Inspected, *, now: int, source: str, apply_one: ApplyOne
) -> tuple[str, str | None]:
    """Apply the event's own row with `apply_one` (the generic newest-wins
    rule, webhooks/apply.py), then each embedded snapshot, then re-derive the
    money of every payment intent they touch."""
    assert ins.row is not None and ins.table is not None
    row = dict(ins.row)
    embedded = json.loads(row.pop(EMBEDDED) or "[]")
    for r in [row, *(snap for _, snap in embedded)]:
        if r.get("livemode") is None:
            r["livemode"] = int(bool(ins.livemode))
    outcome = apply_one(view, dataclasses.replace(ins, row=row), now=now, source=source)
    intents: set[str] = set()
    for table, snap in embedded:
        # A snapshot of the same moment, but not the object the event is
        # about: its status changes are not described by previous_attributes.
        sub = dataclasses.replace(ins, table=table, row=snap, prev_status=None, touched_sub=None)
        apply_one(view, sub, now=now, source=source)
        intents.update(_intents_of(view, table, snap))
    intents.update(_intents_of(view, ins.table, row))
    for pi in sorted(intents):
        derive(view, pi, now=now)
    return outcome


def touched_intents(view: MoneyView, ins: Inspected) -> set[str]:
    """The payment intents a money event is about (for the replay report)."""
    if ins.table not in TABLES or ins.row is None:
        return set()
    out = _intents_of(view, ins.table, ins.row)
    for table, snap in json.loads(ins.row.get(EMBEDDED) or "[]"):
        out |= _intents_of(view, table, snap)
    return out


def _intents_of(view: MoneyView, table: str, row: dict[str, Any]) -> set[str]:
    if table == "payment_intents":
        return {row["id"]}
    pi = row.get("payment_intent")
    if pi:
        return {pi}
    if table == "refunds" and row.get("charge"):
        charge = view.get("charges", row["charge"])
        if charge is not None and charge.get("payment_intent"):
            return {charge["payment_intent"]}
    return set()


def money_of(
    pi: dict[str, Any] | None, charges: list[dict[str, Any]], refunds: list[dict[str, Any]]
) -> dict[str, Any]:
    """amount_captured / amount_refunded / refund_state of one payment intent.

    Refund rows are the finer source (a failed refund gives its amount
    back), but the mirror may not hold every refund (a `charge.refunded` of
    a newer API version names only the total): when the refunds it knows
    of, failed ones included, do not add up to the charges' total, the
    charges' figure is used.
    """
    captured = sum(int(c.get("amount_captured") or 0) for c in charges)
    if not charges and pi is not None:
        captured = int(pi.get("amount_received") or 0)
    charge_total = sum(int(c.get("amount_refunded") or 0) for c in charges)
    known = sum(int(r.get("amount") or 0) for r in refunds)
    active = sum(int(r.get("amount") or 0) for r in refunds if r.get("status") in ACTIVE)
    refunded = active if known >= charge_total else charge_total
    if refunded and captured and refunded >= captured:
        state = "refunded"
    elif refunded:
        state = "partially_refunded"
    elif any(r.get("status") == "failed" for r in refunds):
        state = "refund_failed"
    else:
        state = "none"
    return {"amount_captured": captured, "amount_refunded": refunded, "refund_state": state}


def derive(view: MoneyView, pi_id: str, *, now: int) -> None:
    charges = view.rows_where("charges", "payment_intent", [pi_id])
    refunds = {r["id"]: r for r in view.rows_where("refunds", "payment_intent", [pi_id])}
    for r in view.rows_where("refunds", "charge", [c["id"] for c in charges]):
        refunds.setdefault(r["id"], r)
    pi = view.get("payment_intents", pi_id)
    money = money_of(pi, charges, list(refunds.values()))
    if pi is None:
        # Refund news before any news of the intent: a row that holds the
        # money only; the intent's own snapshot fills the rest when it comes.
        view.put("payment_intents", {"id": pi_id, **money, "updated_at": now})
    elif any(pi.get(k) != v for k, v in money.items()):
        view.put("payment_intents", {**pi, **money})
