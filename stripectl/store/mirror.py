"""Reading and writing mirror rows in bulk.

The newest-wins decision lives in the services (they know about events);
this module only loads current rows by id and upserts rows inside the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import Any

from stripectl.store.db import Store

MIRROR_TABLES = (
    "subscriptions", "customers", "invoices", "checkout_sessions", "payment_intents",
    "refunds", "charges",  # store/refunds.py
)
_CHUNK = 500  # stays under SQLite's bound-parameter limit
# A tuple, not `dict | list`: that builds a UnionType per value checked (~20 values a row).


def get_rows(store: Store, table: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    assert table in MIRROR_TABLES
    wanted = list(dict.fromkeys(i for i in ids if i))
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(part))
        for row in store.query(f"SELECT * FROM {table} WHERE id IN ({marks})", tuple(part)):
            out[row["id"]] = row
    return out


_ROWS_PER_STATEMENT = 200
_PARAMS_PER_STATEMENT = 8_000  # well under SQLite's 32,766 and PostgreSQL's 65,535


def put_rows(store: Store, table: str, rows: list[dict[str, Any]]) -> None:
    """Upsert rows (call inside `store.transaction()`): the columns a row carries
    are written, the others keep their stored values (sqlite-utils upsert semantics).

    A dict or list value is a caller bug; sqlite3 refuses to bind it.

    Raw executemany instead of sqlite-utils upsert_all: on the replay benchmark
    upsert_all spent ~50 us a row rebuilding queries and JSON-checking values,
    a quarter of the whole per-delivery budget; this costs ~5 us.
    """
    assert table in MIRROR_TABLES
    groups: dict[tuple[str, ...], dict[Any, tuple[Any, ...]]] = {}
    for row in rows:
        # Values are SQL-ready scalars: JSON columns arrive as text from
        # webhooks/snapshots.py (a per-value JSON check was ~15 us a row).
        # A later row of the same id replaces an earlier one, as a second
        # upsert would (and PostgreSQL refuses one id twice in a statement).
        group = groups.setdefault(tuple(row), {})
        group.pop(row["id"], None)
        group[row["id"]] = tuple(row.values())
    for cols, by_id in groups.items():
        values = list(by_id.values())
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "id")
        marks = f"({', '.join('?' * len(cols))})"
        per = max(1, min(_ROWS_PER_STATEMENT, _PARAMS_PER_STATEMENT // len(cols)))
        for start in range(0, len(values), per):
            part = values[start:start + per]
            # Many rows per statement: sqlite3 releases the GIL around every
            # step, and with 32 listing threads parsing pages each release
            # cost the writer a wait for the GIL (a sync at 100 req/s spent
            # more time waiting than writing).
            sql = (
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES {', '.join([marks] * len(part))} "
                f"ON CONFLICT(id) DO UPDATE SET {updates}"
            )
            store.executemany(sql, [tuple(chain.from_iterable(part))])


def get_row(store: Store, table: str, row_id: str) -> dict[str, Any] | None:
    return get_rows(store, table, [row_id]).get(row_id)


def all_rows(
    store: Store, table: str, where: str = "", params: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    assert table in MIRROR_TABLES
    sql = f"SELECT * FROM {table}" + (f" WHERE {where}" if where else "") + " ORDER BY id"
    return store.query(sql, params)


# What the access report reads of an invoice (services/subscription_report.py).
REPORT_INVOICE_COLUMNS = (
    "id, subscription, last_event_created, status, attempt_count, next_payment_attempt, "
    "action_required"
)


def newest_invoices_for_subscriptions(
    store: Store, sub_ids: Iterable[str], columns: str = REPORT_INVOICE_COLUMNS
) -> list[dict[str, Any]]:
    """Each subscription's newest invoice by (last_event_created, id), the
    order of subscription_report.latest_invoices, and only `columns`.

    The query is the engine's (SQLite: a bare column beside max(); PostgreSQL:
    DISTINCT ON). Reading every invoice with all its columns was most of
    the 5,000-subscription access report of bench/replay.py (~75 -> ~25 ms).
    """
    wanted = list(dict.fromkeys(i for i in sub_ids if i))
    out: list[dict[str, Any]] = []
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(part))
        sql = store.engine.newest_per_group_sql(
            "invoices", columns, "subscription", ("last_event_created", "id"),
            f"subscription IN ({marks})",
        )
        rows = store.query(sql, tuple(part))
        for row in rows:
            row.pop("newest_key", None)
        out.extend(rows)
    return out


def invoices_for_subscriptions(store: Store, sub_ids: Iterable[str]) -> list[dict[str, Any]]:
    wanted = list(dict.fromkeys(i for i in sub_ids if i))
    out: list[dict[str, Any]] = []
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(part))
        out.extend(
            store.query(f"SELECT * FROM invoices WHERE subscription IN ({marks})", tuple(part))
        )
    return out


def checkout_link(store: Store, subscription_id: str) -> tuple[str | None, str | None] | None:
    """The user a completed checkout session attached to this subscription."""
    # NULLS LAST and the id: the same pick on both engines (PostgreSQL
    # sorts NULL first in DESC, SQLite last; a tie was the engine's choice).
    row = store.execute(
        "SELECT user_id, plan_name FROM checkout_sessions WHERE subscription = ? "
        "AND user_id IS NOT NULL ORDER BY last_event_created DESC NULLS LAST, id DESC LIMIT 1",
        (subscription_id,),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def checkout_links(
    store: Store, subscription_ids: Iterable[str]
) -> dict[str, tuple[str | None, str | None]]:
    """`checkout_link` of many subscriptions in one query per 500 (a sync of
    10,000 subscriptions asked once per row: a round trip each on a server)."""
    wanted = list(dict.fromkeys(i for i in subscription_ids if i))
    best: dict[str, tuple[tuple[int, int, str], tuple[str | None, str | None]]] = {}
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(part))
        for sub, user, plan, created, cs_id in store.execute(
            "SELECT subscription, user_id, plan_name, last_event_created, id FROM checkout_sessions "
            f"WHERE subscription IN ({marks}) AND user_id IS NOT NULL",
            tuple(part),
        ).fetchall():
            key = (0 if created is None else 1, created or 0, cs_id)
            if sub not in best or key > best[sub][0]:
                best[sub] = (key, (user, plan))
    return {sub: link for sub, (_, link) in best.items()}
