"""Bulk writes on both engines: a chunk's many names, a chunk's many `events` rows.

PostgreSQL takes the mirror's exclusive lock for a transaction naming
thousands (store/engine/postgres.py begin_write) and loads many rows with
COPY outside a write batch (store/engine/pg_bulk.py); SQLite does neither.
The results must be the same.
"""

from __future__ import annotations

from typing import Any

import pytest

from stripectl.errors import StoreError
from stripectl.store import Store, open_store
from stripectl.store import events as store_events
from stripectl.store import inbox as store_inbox
from tests.test_store_contract import _event


@pytest.fixture
def store(mirror_target: str) -> Any:
    s = open_store(mirror_target)
    yield s
    s.close()


def test_a_writer_naming_thousands_takes_the_whole_mirror(mirror_target: str) -> None:
    """A bulk chunk's names are not locked one by one (60,000 advisory locks
    ran out of the server's shared lock table): it excludes every writer, as
    an unnamed one does."""
    import threading

    a = open_store(mirror_target)
    done: list[str] = []

    def write() -> None:
        b = open_store(mirror_target)
        try:
            with b.transaction(["o:subscriptions:sub_elsewhere"]):
                b.meta_set("other", "1")
            done.append("other")
        finally:
            b.close()

    try:
        with a.transaction([f"d:{n:064x}" for n in range(60_000)]):
            a.meta_set("bulk", "1")
            other = threading.Thread(target=write)
            other.start()
            other.join(timeout=0.5)
            assert done == [], "a writer ran beside a bulk writer"
        other.join(timeout=10)
        assert done == ["other"] and a.meta_get("bulk") == "1"
    finally:
        a.close()


def test_many_events_at_once_replace_stored_ones(store: Store) -> None:
    """Outside a write batch PostgreSQL loads rows with COPY; a row already
    stored (or twice in the rows) falls back to the replace statement: the
    same table as row by row, on both engines."""
    with store.transaction():
        store_events.insert_events(store, [_event(n) for n in range(3)])
    again = [_event(n, outcome="rejected", reason="x") for n in range(2, 600)]
    with store.transaction():  # d0002 is stored: the bulk load falls back
        store_events.insert_events(store, again)
    rows = list(store_inbox.iter_deliveries(store))
    assert len(rows) == 600 and [r.delivery_id for r in rows[:2]] == ["d0000", "d0001"]
    assert rows[2].delivery_id == "d0002" and rows[2].outcome == "rejected"
    fresh = [_event(n, body=bytes(range(256)) * 12) for n in range(600, 1200)]
    with store.transaction():
        store_events.insert_events(store, fresh)
    bodies = {r.delivery_id: r.body for r in store_inbox.iter_deliveries(store)}
    assert len(bodies) == 1200 and bodies["d1199"] == bytes(range(256)) * 12
    with pytest.raises(StoreError), store.transaction():  # a failed transaction: none of them
        store_events.insert_events(store, [_event(n) for n in range(1200, 1800)])
        store.execute("INSERT INTO no_such_table VALUES (1)")
    assert store_events.event_counts(store) == {"applied": 602, "rejected": 598}
    twice = [_event(n) for n in range(1800, 2400)] + [_event(1800, outcome="duplicate")]
    with store.transaction():  # one id twice in the rows: the later one is kept
        store_events.insert_events(store, twice)
    assert store_events.event_counts(store) == {"applied": 1201, "rejected": 598, "duplicate": 1}
