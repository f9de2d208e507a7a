"""`history ID`: one object's story from the mirror, for "she paid, why no access?".

The subject (a subscription, customer, invoice, checkout session, payment
intent or user id) is resolved to the related objects the mirror links to it
(a subscription's invoices and checkout sessions, a customer's everything,
a user's subscriptions and sessions), then report sections are built:

    deliveries   every stored delivery that touched any of them, oldest first
    mirror       what the mirror holds now for each of them
    + SECTIONS   extra sections (below): e.g. a payment's refunds

and the access decision, exactly as `stripectl access --offline` decides it.

EXTENDING: a section is a function `(store, subject) -> Section | None`;
append it to `SECTIONS`. The CLI renders every section as a table (its
`columns`) and puts its rows under `section.key` in --json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stripectl.store import Store
from stripectl.store import history as q

KINDS = (
    ("sub_", "subscription", "subscriptions"),
    ("cus_", "customer", "customers"),
    ("in_", "invoice", "invoices"),
    ("cs_", "checkout_session", "checkout_sessions"),
    ("pi_", "payment_intent", "payment_intents"),
)
TABLE_OF = {kind: table for _, kind, table in KINDS}


@dataclass
class Subject:
    id: str
    kind: str  # subscription | customer | invoice | checkout_session | payment_intent | user
    # table -> ids of the subject and its relatives, as the mirror links them
    related: dict[str, list[str]] = field(default_factory=dict)
    # mirror rows already read while resolving (table -> id -> row)
    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def object_ids(self) -> list[str]:
        return [i for ids in self.related.values() for i in ids]

    def add(self, table: str, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            ids = self.related.setdefault(table, [])
            if r["id"] not in ids:
                ids.append(r["id"])
            self.rows.setdefault(table, {})[r["id"]] = r


@dataclass
class Section:
    key: str  # the JSON key
    title: str
    columns: list[tuple[str, str]]  # (row key, column title) for the table
    rows: list[dict[str, Any]]
    note: str | None = None


SectionProvider = Callable[[Store, Subject], "Section | None"]


def kind_of(subject_id: str) -> str:
    for prefix, kind, _ in KINDS:
        if subject_id.startswith(prefix):
            return kind
    return "user"


def resolve(store: Store, subject_id: str) -> Subject:
    """The subject and the objects the mirror links to it."""
    subject = Subject(id=subject_id, kind=kind_of(subject_id))
    kind = subject.kind
    if kind == "user":
        subject.add("subscriptions", q.rows_where(store, "subscriptions", "user_id", [subject_id]))
        sessions = q.rows_where(store, "checkout_sessions", "user_id", [subject_id])
        sessions += q.rows_where(store, "checkout_sessions", "client_reference_id", [subject_id])
        subject.add("checkout_sessions", sessions)
        extra = [s["subscription"] for s in sessions if s.get("subscription")]
        subject.add("subscriptions", q.rows_where(store, "subscriptions", "id", extra))
        _add_subscription_relatives(store, subject)
        # The customers those belong to (their own deliveries: customer.created...).
        customers = [r.get("customer") for t in ("subscriptions", "checkout_sessions")
                     for r in subject.rows.get(t, {}).values()]
        subject.add("customers", q.rows_where(store, "customers", "id", [c for c in customers if c]))
        return subject
    own = q.row(store, TABLE_OF[kind], subject_id)
    subject.related[TABLE_OF[kind]] = [subject_id]  # its deliveries count even if not mirrored
    if own is not None:
        subject.add(TABLE_OF[kind], [own])
    if kind == "subscription":
        _add_subscription_relatives(store, subject)
    elif kind == "customer":
        for table in ("subscriptions", "invoices", "checkout_sessions", "payment_intents"):
            subject.add(table, q.rows_where(store, table, "customer", [subject_id]))
        _add_subscription_relatives(store, subject)
    elif kind == "checkout_session" and own is not None:
        for table, column in (("subscriptions", "subscription"), ("payment_intents", "payment_intent")):
            if own.get(column):
                subject.add(table, q.rows_where(store, table, "id", [own[column]]))
    return subject


def _add_subscription_relatives(store: Store, subject: Subject) -> None:
    subs = subject.related.get("subscriptions", [])
    subject.add("invoices", q.rows_where(store, "invoices", "subscription", subs))
    subject.add("checkout_sessions", q.rows_where(store, "checkout_sessions", "subscription", subs))


# ---- sections ---------------------------------------------------------------


def _statuses(body: bytes | None) -> tuple[str | None, str | None]:
    """(previous_attributes.status, data.object.status) of an event body."""
    if not body:
        return None, None
    from stripectl.webhooks.json_parse import loads

    try:
        data = loads(body).get("data") or {}
    except (ValueError, AttributeError, RecursionError):
        return None, None
    obj, prev = data.get("object") or {}, data.get("previous_attributes") or {}
    after = obj.get("status") if isinstance(obj, dict) else None
    before = prev.get("status") if isinstance(prev, dict) else None
    return (str(before) if before is not None else None), (str(after) if after is not None else None)


def deliveries_section(store: Store, subject: Subject) -> Section:
    rows = []
    last: dict[str, str | None] = {}  # object id -> status after its last trusted delivery
    found = q.deliveries_for(store, subject.object_ids())
    for d in found:
        if d["matched"] != "object id":
            d["body"] = None  # rejected: nothing in it was verified
    found.sort(key=lambda r: (r["created"] or r["received_at"] or 0, r["received_at"] or 0,
                              r["stored_at"] or 0, r["delivery_id"]))
    for d in found:
        trusted = d["outcome"] != "rejected"
        # A rejected delivery failed its checks: its body's claims are not shown.
        before, after = _statuses(d.pop("body")) if trusted else (None, None)
        oid = d["object_id"]
        if trusted and before is None and after is not None and oid in last:
            before = last[oid]  # no previous_attributes.status: it did not change
        if trusted and after is not None and d["outcome"] == "applied":
            last[oid] = after
        rows.append({**d, "status_before": before, "status_after": after})
    return Section(
        key="deliveries",
        title="deliveries (oldest first)",
        columns=[
            ("created", "event time"), ("type", "type"), ("object_id", "object"), ("source", "source"),
            ("outcome", "outcome"), ("reason", "reason"), ("status_change", "status"),
        ],
        rows=rows,
        note=None if rows else "no stored delivery touched these objects",
    )


_MIRROR_COLUMNS = ("status", "customer", "subscription", "user_id", "last_event_id",
                   "last_event_created", "last_event_type", "source", "updated_at")


def mirror_section(store: Store, subject: Subject) -> Section:
    rows = []
    for table, ids in subject.related.items():
        for oid in ids:
            r = subject.rows.get(table, {}).get(oid)
            if r is None:
                rows.append({"table": table, "id": oid, "in_mirror": False})
                continue
            rows.append({"table": table, "id": oid, "in_mirror": True,
                         **{c: r.get(c) for c in _MIRROR_COLUMNS if c in r}})
    return Section(
        key="mirror",
        title="the mirror now",
        columns=[("table", "table"), ("id", "id"), ("status", "status"),
                 ("last_event_type", "last event"), ("last_event_created", "as of"), ("source", "from")],
        rows=rows,
    )


# Built in this order; append a provider to add a section (see the module doc).
def _refunds_section(store: Store, subject: Subject) -> Section | None:
    # Imported when called: history_refunds imports this module by name.
    from stripectl.services.history_refunds import refunds_section

    section: Section | None = refunds_section(store, subject)
    return section


SECTIONS: list[SectionProvider] = [deliveries_section, mirror_section, _refunds_section]


# ---- access ------------------------------------------------------------------


def access_decision(store: Store, subject: Subject, *, grace: str, now: int) -> dict[str, Any]:
    """The offline access decision that matters for this subject, with its reason."""
    from stripectl.services.access import check_access

    kind = subject.kind
    if kind in ("subscription", "invoice"):
        sub_id = subject.id if kind == "subscription" else (
            subject.rows.get("invoices", {}).get(subject.id, {}).get("subscription")
        )
        if not sub_id:
            return {"subject": None, "granted": None, "why": "the invoice has no subscription in the mirror"}
        return _subscription_decision(store, str(sub_id), grace=grace, now=now)
    who: str | None = subject.id if kind in ("customer", "user") else None
    if kind in ("checkout_session", "payment_intent"):
        own = subject.rows.get(TABLE_OF[kind], {}).get(subject.id) or {}
        who = own.get("user_id") or own.get("customer")
    if not who:
        return {"subject": None, "granted": None,
                "why": f"the mirror links no customer or user to this {kind.replace('_', ' ')}"}
    report = check_access(store, None, str(who), grace=grace, clock=lambda: now)
    return {"subject": who, "granted": report.granted, "why": report.why,
            "data_as_of": report.data_as_of, "notes": report.notes}


def _subscription_decision(store: Store, sub_id: str, *, grace: str, now: int) -> dict[str, Any]:
    from stripectl.services.mirror_view import OverlayView
    from stripectl.services.subscription_report import subscription_report

    items = subscription_report(OverlayView(store), [sub_id], grace=grace, now=now)
    if not items:
        return {"subject": sub_id, "granted": False, "why": f"{sub_id} is not in the mirror"}
    item = items[0]
    return {"subject": sub_id, "granted": bool(item["access"]), "why": str(item["access_reason"]),
            "data_as_of": item.get("last_event_created")}


@dataclass
class History:
    subject: Subject
    sections: list[Section]
    access: dict[str, Any]
    checked_at: int

    @property
    def known(self) -> bool:
        """Whether the mirror holds anything about the subject (a row or a delivery)."""
        return any(self.subject.rows.values()) or any(
            s.rows for s in self.sections if s.key == "deliveries"
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subject": {"id": self.subject.id, "kind": self.subject.kind},
            "related": self.subject.related,
        }
        for s in self.sections:
            out[s.key] = s.rows
        out["access"] = self.access
        out["checked_at"] = self.checked_at
        return out


def history(store: Store, subject_id: str, *, grace: str = "retry",
            clock: Callable[[], float] = time.time,
            progress: Callable[[int], None] | None = None) -> History:
    """The story of `subject_id`. First indexes the deliveries stored since the
    last history (store/history.catch_up; `progress` gets the running count)."""
    now = int(clock())
    q.catch_up(store, progress)
    subject = resolve(store, subject_id)
    sections = [s for provider in SECTIONS if (s := provider(store, subject)) is not None]
    return History(subject=subject, sections=sections,
                   access=access_decision(store, subject, grace=grace, now=now), checked_at=now)
