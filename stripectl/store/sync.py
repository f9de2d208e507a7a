"""Mirror reads and writes for sync, reconcile and access.

Snapshots fetched from the API (a listing, a retrieve) go through
`apply_subscription_snapshots`, which applies the mirror's newest-wins rule
inside the caller's transaction: a row whose `last_event_created` is newer
than the snapshot is left alone (`newer_than_snapshot`).

Ties (same second) go to a row written from an event: event `created` and
our snapshot times are whole seconds, so a webhook stamped in the listing's
second may describe a change made after the listing read that object;
overwriting it could roll back a cancelation and grant access again. A tie
costs at most one more sync. A row that is itself an API snapshot of that
second (sync, access, reconcile --fix) is no newer than a fresh one, so it
is replaced / compared as before: `sync && reconcile` in one second must
still compare every row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from stripectl.store.db import Store
from stripectl.store.mirror import checkout_links, get_rows, put_rows

# What a snapshot says about a subscription (webhooks/snapshots.subscription_row).
SUBSCRIPTION_CONTENT = (
    "customer",
    "status",
    "price",
    "quantity",
    "items",
    "current_period_end",
    "cancel_at_period_end",
    "trial_end",
    "canceled_at",
    "metadata",
    "user_id",
    "plan_name",
    "livemode",
)
# Columns that describe the event a row came from; an API snapshot is no
# event, so they are cleared (only those the schema has).
_EVENT_ONLY = ("last_event_type", "last_prev_status")

# last_event_id prefixes of rows written from API snapshots, not events.
SNAPSHOT_ID_PREFIXES = ("sync:", "api:", "reconcile:")

# The compact reconcile index: one tuple per mirror row, in this order.
INDEX_COLUMNS = (
    "id",
    "status",
    "price",
    "quantity",
    "current_period_end",
    "cancel_at_period_end",
    "customer",
    "user_id",
    "plan_name",
    "livemode",
    "last_event_created",
    "status_since",
)


@dataclass
class SnapshotOutcome:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped_newer: list[str] = field(default_factory=list)


def newer_than_snapshot(row: dict[str, Any], snapshot_at: int) -> bool:
    """Whether mirror `row` must be kept over an API snapshot taken at `snapshot_at`.

    Newest wins; on a tie the row wins unless it is an API snapshot itself.
    """
    created = row.get("last_event_created") or 0
    if created != snapshot_at:
        return created > snapshot_at
    return not str(row.get("last_event_id") or "").startswith(SNAPSHOT_ID_PREFIXES)


def subscription_newer_than_snapshot(
    store: Store, sub_id: str, last_event_created: int | None, snapshot_at: int
) -> bool:
    """`newer_than_snapshot` from the reconcile index's `last_event_created`;
    reads the row only on a tie (rare), when its origin decides."""
    if (last_event_created or 0) != snapshot_at:
        return (last_event_created or 0) > snapshot_at
    row = get_rows(store, "subscriptions", [sub_id]).get(sub_id)
    return row is not None and newer_than_snapshot(row, snapshot_at)


def _event_only_columns(store: Store) -> tuple[str, ...]:
    cols = store.columns("subscriptions")
    return tuple(c for c in _EVENT_ONLY if c in cols)


def apply_subscription_snapshots(
    store: Store,
    rows: Iterable[dict[str, Any]],
    *,
    snapshot_at: int,
    event_id: str,
    source: str,
    now: int,
) -> SnapshotOutcome:
    """Upsert `subscription_row` dicts taken at `snapshot_at`; newest wins.

    Call inside `store.transaction()` so the read-compare-write is atomic
    against a concurrent webhook writer. A row from an event in the same
    second as `snapshot_at` is kept (`skipped_newer`): see `newer_than_snapshot`.
    """
    rows = list(rows)
    out = SnapshotOutcome()
    local = get_rows(store, "subscriptions", [r["id"] for r in rows])
    clear = dict.fromkeys(_event_only_columns(store))
    stamp = {
        "last_event_id": event_id,
        "last_event_created": snapshot_at,
        "updated_at": now,
        "source": source,
        **clear,
    }
    full: list[dict[str, Any]] = []
    touch: list[dict[str, Any]] = []
    links = checkout_links(store, [r["id"] for r in rows if not r.get("user_id")])
    for row in rows:
        old = local.get(row["id"])
        if old is not None and newer_than_snapshot(old, snapshot_at):
            out.skipped_newer.append(row["id"])
            continue
        if not row.get("user_id"):
            _keep_user_link(links.get(row["id"]), row, old)
        if old is None:
            full.append({**row, "status_since": snapshot_at, **stamp})
            out.created.append(row["id"])
        elif any(old.get(c) != row.get(c) for c in SUBSCRIPTION_CONTENT):
            since = old.get("status_since")
            if old.get("status") != row.get("status") or since is None:
                since = snapshot_at
            full.append({**row, "status_since": since, **stamp})
            out.updated.append(row["id"])
        else:
            # Same content: only record that it was true at snapshot_at, so a
            # late webhook older than this snapshot cannot roll it back.
            touch.append({"id": row["id"], **stamp})
            out.unchanged.append(row["id"])
    put_rows(store, "subscriptions", full)
    put_rows(store, "subscriptions", touch)
    return out


def _keep_user_link(
    link: tuple[str | None, str | None] | None, row: dict[str, Any], old: dict[str, Any] | None
) -> None:
    # As replay does (webhooks/apply.py): a subscription without metadata
    # user_id keeps the user its Checkout Session (or the mirror) named.
    if link is None and old is not None:
        link = (old.get("user_id"), old.get("plan_name"))
    if link is not None:
        row["user_id"], row["plan_name"] = link[0], row.get("plan_name") or link[1]


def delete_subscriptions(store: Store, ids: list[str], *, snapshot_at: int) -> list[str]:
    """Delete mirror rows Stripe did not know at `snapshot_at` (inside a
    transaction) unless `newer_than_snapshot`."""
    gone: list[str] = []
    for row in get_rows(store, "subscriptions", ids).values():
        if not newer_than_snapshot(row, snapshot_at):
            store.delete("subscriptions", "id", row["id"])
            gone.append(row["id"])
    return gone


def apply_invoice_snapshot(
    store: Store, row: dict[str, Any], *, snapshot_at: int, event_id: str, now: int
) -> bool:
    """Upsert one `invoice_row` fetched at `snapshot_at` unless the mirror's
    row is kept (`newer_than_snapshot`: same-second events win)."""
    old = get_rows(store, "invoices", [row["id"]]).get(row["id"])
    if old is not None and newer_than_snapshot(old, snapshot_at):
        return False
    stamp = {"last_event_id": event_id, "last_event_created": snapshot_at, "updated_at": now,
             "source": "api"}
    cols = store.columns("invoices")
    stamp.update(dict.fromkeys(c for c in _EVENT_ONLY if c in cols))
    put_rows(store, "invoices", [{**row, **stamp}])
    return True


def iter_subscription_index(store: Store) -> Iterator[tuple[Any, ...]]:
    """Every mirror subscription as an INDEX_COLUMNS tuple (reads only)."""
    cur = store.execute(f"SELECT {', '.join(INDEX_COLUMNS)} FROM subscriptions")
    while True:
        batch = cur.fetchmany(2000)
        if not batch:
            return
        yield from batch


def index_rows(store: Store, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """INDEX_COLUMNS tuples of the mirror rows among `ids` (reads only)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    cur = store.execute(
        f"SELECT {', '.join(INDEX_COLUMNS)} FROM subscriptions WHERE id IN ({marks})", ids
    )
    return {row[0]: row for row in cur.fetchall()}


# Reconcile checks listed ids off in a temporary table (this connection only,
# never the mirror's file), so memory does not grow with the account's size.
def _listed(store: Store) -> str:
    # Each engine names its session-private schema: temp (SQLite), pg_temp.
    return "pg_temp.stripectl_listed" if store.dialect == "postgres" else "temp.stripectl_listed"


def listed_begin(store: Store) -> None:
    if store.dialect == "sqlite":
        # Its journal in memory: the temp table's file would otherwise get a journal
        # file created and deleted for every statement (~6 ms a page).
        store.execute("PRAGMA temp.journal_mode=MEMORY")
    store.execute("CREATE TEMP TABLE IF NOT EXISTS stripectl_listed (id TEXT PRIMARY KEY)")
    store.execute(f"DELETE FROM {_listed(store)}")


def listed_add(store: Store, ids: list[str]) -> list[str]:
    """Record `ids` as listed; returns those not recorded before (in order)."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    known = {r[0] for r in store.execute(
        f"SELECT id FROM {_listed(store)} WHERE id IN ({marks})", ids
    )}
    fresh = list(dict.fromkeys(i for i in ids if i not in known))
    if fresh:
        values = ",".join("(?)" * 1 for _ in fresh)
        store.execute(f"INSERT INTO {_listed(store)} (id) VALUES {values}", fresh)
    return fresh


def iter_unlisted_index(store: Store) -> Iterator[tuple[Any, ...]]:
    """INDEX_COLUMNS tuples of mirror rows the listing did not return, by id."""
    cur = store.execute(
        f"SELECT {', '.join(INDEX_COLUMNS)} FROM subscriptions "
        f"WHERE id NOT IN (SELECT id FROM {_listed(store)}) ORDER BY id"
    )
    while True:
        batch = cur.fetchmany(2000)
        if not batch:
            return
        yield from batch


def listed_end(store: Store) -> None:
    store.execute(f"DROP TABLE IF EXISTS {_listed(store)}")


def count_subscriptions(store: Store) -> int:
    return int(store.execute("SELECT count(*) FROM subscriptions").fetchone()[0])


def subscriptions_of(store: Store, subject: str) -> dict[str, Any]:
    """Mirror rows for a user id or a customer id, and the customers involved.

    A user is found through `subscriptions.user_id` (metadata user_id),
    checkout sessions (`user_id` / client_reference_id) and customers'
    metadata user_id.
    """
    if subject.startswith("cus_"):
        subs = store.query("SELECT * FROM subscriptions WHERE customer = ? ORDER BY id", (subject,))
        return {"customers": [subject], "subscriptions": subs, "extra_subscription_ids": []}
    subs = store.query("SELECT * FROM subscriptions WHERE user_id = ? ORDER BY id", (subject,))
    customers = {s["customer"] for s in subs if s.get("customer")}
    extra: set[str] = set()
    for cs in store.query(
        "SELECT customer, subscription FROM checkout_sessions WHERE user_id = ?", (subject,)
    ):
        if cs.get("customer"):
            customers.add(cs["customer"])
        if cs.get("subscription"):
            extra.add(cs["subscription"])
    for cus in store.query("SELECT id, metadata FROM customers WHERE metadata LIKE ?",
                           (f"%{json.dumps(subject)}%",)):
        meta = json.loads(cus["metadata"] or "{}")
        if str(meta.get("user_id")) == subject:
            customers.add(cus["id"])
    if customers:
        marks = ",".join("?" * len(customers))
        known = {s["id"] for s in subs}
        for row in store.query(
            f"SELECT * FROM subscriptions WHERE customer IN ({marks}) ORDER BY id",
            tuple(sorted(customers)),
        ):
            # A customer's subscription tagged for another user is not this user's.
            if row["id"] not in known and row.get("user_id") in (None, subject):
                subs.append(row)
                known.add(row["id"])
    extra -= {s["id"] for s in subs}
    return {"customers": sorted(customers), "subscriptions": subs,
            "extra_subscription_ids": sorted(extra)}
