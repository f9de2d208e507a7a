"""WAL checkpoints from a background thread while a replay writes (store/db.py)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from stripectl.store import events as store_events
from stripectl.store import open_store


def _row(n: int) -> tuple[object, ...]:
    return (f"{n:064d}", f"evt_{n}", "invoice.paid", n, 0, "in_1", None, f"t:{n}", None, "{}",
            b"x" * 3000, 1, "applied", None, None, "run", 0)


def _rows_in_main_file(db: Path) -> int:
    """Rows the database file itself holds, the WAL left aside (a read taken
    while a checkpoint writes may see a torn file: then it counts as none)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return -1


def test_commits_are_checkpointed_beside_the_writer_and_the_thread_stops(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store = open_store(str(db))
    try:
        with store.background_checkpoints():
            assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            assert any(t.name == "stripectl-checkpointer" for t in threading.enumerate())
            for batch in range(20):
                with store.transaction():
                    store_events.insert_events(store, [_row(batch * 50 + i) for i in range(50)])
            # The checkpointer copies committed frames into the database file
            # by itself: a reader that opens only the main file sees them.
            deadline = time.monotonic() + 10
            while (copied := _rows_in_main_file(db)) != 1000 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert copied == 1000
        assert not any(t.name == "stripectl-checkpointer" for t in threading.enumerate())
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        with store.transaction():
            store_events.insert_events(store, [_row(5000)])
    finally:
        store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1001
    conn.close()


def test_a_read_only_store_has_no_checkpointer(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "dry.db"), dry_run=True)
    try:
        with store.background_checkpoints():
            assert not any(t.name == "stripectl-checkpointer" for t in threading.enumerate())
    finally:
        store.close()


def test_a_failed_checkpointer_hands_checkpoints_back_to_commits(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "m.db"))
    engine = store.engine  # the SQLite engine's checkpointer is what this tests
    real_path = engine.target
    try:
        engine.target = str(tmp_path / "no-such-folder" / "m.db")  # the thread cannot connect
        with store.background_checkpoints():
            deadline = time.monotonic() + 10
            while not engine._checkpointer_failed.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
            with store.transaction():
                store_events.insert_events(store, [_row(1)])
            assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        engine.target = real_path
        store.close()


def test_small_replays_start_no_checkpointer(tmp_path: Path) -> None:
    """The listener replays batch by batch: no thread (and no extra fsync) each time."""
    from stripectl.services.replay import ReplayOptions, replay
    from stripectl.webhooks.delivery import Delivery
    from tests import factories as f
    from tests.replay_helpers import SECRET, envelopes

    env = envelopes(f.lifecycle("sub_1Ckpt00000000000000001", "cus_1Ckpt000000001")[:2])
    threads: list[str] = []
    store = open_store(str(tmp_path / "m.db"))
    try:
        replay(
            store,
            [Delivery(source="l", body=e["body"].encode(), headers=e["headers"],
                      received_at=e["received_at"]) for e in env],
            ReplayOptions(secrets=[SECRET]),
            progress=lambda _: threads.extend(t.name for t in threading.enumerate()),
        )
    finally:
        store.close()
    assert threads and "stripectl-checkpointer" not in threads
