"""Read queries over the inbox (the `events` table) for export and listing.

Writes to `events` live in store/events.py (replay owns them). Rows are
streamed with a plain cursor so exporting a large inbox stays in bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stripectl.store.db import Store
from stripectl.store.events import body_bytes

_FETCH = 500


@dataclass
class StoredDelivery:
    delivery_id: str
    event_id: str | None
    type: str | None
    source: str | None
    received_at: int | None
    headers: dict[str, str]
    body: bytes
    outcome: str | None
    reason: str | None
    verified: bool
    pruned: bool = False  # the body was dropped (inbox prune --bodies)


def _headers(raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def iter_deliveries(
    store: Store,
    *,
    since: int | None = None,
    outcomes: list[str] | None = None,
    sources: list[str] | None = None,
) -> Iterator[StoredDelivery]:
    """Stored deliveries in arrival order (received_at, then insertion order).

    `since` filters on when the delivery was received (stored, for rows
    without a received_at); `sources` matches `listener`, `api`, or a
    file-path prefix.
    """
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("COALESCE(received_at, stored_at) >= ?")
        params.append(since)
    if outcomes:
        where.append(f"outcome IN ({','.join('?' * len(outcomes))})")
        params.extend(outcomes)
    if sources:
        where.append("(" + " OR ".join("source = ? OR source LIKE ?" for _ in sources) + ")")
        for s in sources:
            params.extend([s, f"{s}%"])
    sql = (
        "SELECT delivery_id, event_id, type, source, received_at, headers, body, outcome, "
        "reason, verified FROM events"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY COALESCE(received_at, stored_at), rowid"
    )
    cur = store.execute(sql, params)
    try:
        while rows := cur.fetchmany(_FETCH):
            for r in rows:
                yield StoredDelivery(
                    delivery_id=r[0],
                    event_id=r[1],
                    type=r[2],
                    source=r[3],
                    received_at=r[4],
                    headers=_headers(r[5]),
                    body=body_bytes(r[6]),
                    outcome=r[7],
                    reason=r[8],
                    verified=bool(r[9]),
                    pruned=r[6] is None,
                )
    finally:
        cur.close()


def count_by_event(store: Store) -> dict[str, int]:
    """event_id -> number of stored rows whose outcome is not rejected."""
    return {
        str(r[0]): int(r[1])
        for r in store.execute(
            "SELECT event_id, count(*) FROM events WHERE outcome != 'rejected' "
            "AND event_id IS NOT NULL GROUP BY event_id"
        )
    }
