"""Opening the mirror, its schema and its migrations.

The database is plain SQLite in WAL mode, so readers never block the writer and
a killed process leaves either a committed transaction or nothing. Every write
goes through `Store.transaction()`, which takes the write lock up front
(BEGIN IMMEDIATE): two stripectl processes on one file serialise instead of
interleaving.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stripectl.errors import CommitOutcomeUnknown, StoreError

if TYPE_CHECKING:
    import sqlite_utils


Migration = Callable[["sqlite_utils.Database"], None]


def _v1(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("events").create(
        {
            "delivery_id": str,  # sha256 of signature header + raw body
            "event_id": str,
            "type": str,
            "created": int,
            "livemode": int,
            "object_id": str,
            "api_version": str,
            "source": str,  # file:line, api, listener
            "received_at": int,
            "headers": str,  # JSON
            "body": bytes,  # raw bytes exactly as received (TEXT if valid UTF-8: _v4)
            "verified": int,
            "outcome": str,
            "reason": str,
            "note": str,
            "run_id": str,
            "stored_at": int,
        },
        pk="delivery_id",
    )
    # Only event_id is indexed (dedupe on every replay chunk). Each extra index
    # cost ~3-4 us per stored delivery on bench/replay.py; the export queries
    # that filter on outcome/created are rare and scan.
    db.table("events").create_index(["event_id"])
    common = {
        "livemode": int,
        "last_event_id": str,
        "last_event_created": int,
        "last_event_type": str,
        "last_prev_status": str,  # previous_attributes.status: orders same-second ties
        "updated_at": int,
        "source": str,  # webhook | api | sync
    }
    db.table("subscriptions").create(
        {
            "id": str,
            "customer": str,
            "status": str,
            "status_since": int,
            "status_since_exact": int,  # 1: from the event that made the change
            "price": str,
            "quantity": int,
            "items": str,  # JSON [{price, quantity, current_period_end}]
            "current_period_end": int,
            "cancel_at_period_end": int,
            "trial_end": int,
            "canceled_at": int,
            "metadata": str,  # JSON
            "user_id": str,
            "plan_name": str,
            **common,
        },
        pk="id",
    )
    db.table("subscriptions").create_index(["customer"])
    db.table("subscriptions").create_index(["user_id"])
    db.table("customers").create(
        {"id": str, "email": str, "name": str, "metadata": str, "deleted": int, **common},
        pk="id",
    )
    db.table("invoices").create(
        {
            "id": str,
            "customer": str,
            "subscription": str,
            "status": str,
            "amount_due": int,
            "amount_paid": int,
            "currency": str,
            "attempt_count": int,
            "next_payment_attempt": int,
            "billing_reason": str,
            "action_required": int,
            "last_failure_at": int,
            **common,
        },
        pk="id",
    )
    db.table("invoices").create_index(["subscription"])
    db.table("checkout_sessions").create(
        {
            "id": str,
            "mode": str,
            "status": str,
            "payment_status": str,
            "customer": str,
            "customer_email": str,
            "client_reference_id": str,
            "user_id": str,
            "plan_name": str,
            "subscription": str,
            "payment_intent": str,
            "url": str,
            "metadata": str,
            "expires_at": int,
            "created": int,
            "idempotency_key": str,
            **common,
        },
        pk="id",
    )
    db.table("checkout_sessions").create_index(["subscription"])
    db.table("payment_intents").create(
        {
            "id": str,
            "status": str,
            "amount": int,
            "currency": str,
            "customer": str,
            "metadata": str,
            "last_error_code": str,
            "idempotency_key": str,
            **common,
        },
        pk="id",
    )


def _v2(db: sqlite_utils.Database) -> None:
    from stripectl.store import ledger

    ledger.migrate(db)


def _v3(db: sqlite_utils.Database) -> None:
    from stripectl.store import runs

    runs.migrate(db)


def _v4(db: sqlite_utils.Database) -> None:
    from stripectl.store import events

    events.migrate_text_bodies(db)


def _v5(db: sqlite_utils.Database) -> None:
    from stripectl.store import refunds

    refunds.migrate(db)


def _v6(db: sqlite_utils.Database) -> None:
    from stripectl.store import history

    history.migrate(db)


# Append only: a released migration is never edited.
MIGRATIONS: list[Migration] = [_v1, _v2, _v3, _v4, _v5, _v6]
SCHEMA_VERSION = len(MIGRATIONS)


class Store:
    """A migrated mirror. Reads are free-form; writes happen in `transaction()`."""

    def __init__(self, conn: sqlite3.Connection, *, path: str, readonly: bool = False) -> None:
        import sqlite_utils

        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.path = path
        self.readonly = readonly
        self._checkpoint_due: threading.Event | None = None
        self._checkpointer_failed = threading.Event()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError("internal: write attempted on a read-only (dry-run) store")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot lock the mirror {self.path}: {exc}") from exc
        try:
            yield self.conn
        except sqlite3.Error as exc:
            self.conn.execute("ROLLBACK")
            # Disk full, I/O error, read-only file: the store's fault, not a bug.
            raise StoreError(f"cannot write to the mirror {self.path}: {exc}") from exc
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                # An I/O error in the sync after the WAL write can leave a commit
                # that recovery finds on the next open: nobody can say "not stored".
                raise CommitOutcomeUnknown(f"cannot commit to the mirror {self.path}: {exc}") from exc
            if self._checkpoint_due is not None:
                self._checkpoint_due.set()
                if self._checkpointer_failed.is_set():
                    self._checkpoints_inline()

    def durable_commits(self, *, lock_timeout: float) -> str:
        """From now on a COMMIT returns only once it is on disk (survives a power
        cut or a kernel crash, not just a killed process): synchronous=FULL makes
        SQLite fdatasync the WAL at every commit, so one commit of many
        deliveries costs one sync. `lock_timeout`: how long a transaction waits
        for another process's write lock before failing (nothing written).
        Returns the setting as the engine reports it once applied."""
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        level = int(self.conn.execute("PRAGMA synchronous").fetchone()[0])
        return "synchronous=" + {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))

    @contextmanager
    def background_checkpoints(self, min_interval: float = 0.0) -> Iterator[None]:
        """Checkpoint the WAL from a thread of its own while the caller writes.

        For one long writer (a large replay), not for short transactions.
        A checkpoint copies the WAL into the database and fsyncs both
        (synchronous=NORMAL). Run by a commit, it stalls the committing
        writer, which in a long replay is the pipeline's one serial stage.
        On another connection it runs beside the writer (PASSIVE never
        blocks it) and waits for the disk without the GIL. Safety is
        SQLite's: a checkpoint may stop anywhere, the WAL keeps every commit.
        Should the thread fail, commits checkpoint inline again.
        `min_interval`: seconds between checkpoints (the listener commits
        often and small: one checkpoint a commit would double its syncs).
        """
        if self.readonly or self.path == ":memory:":
            yield
            return
        due, stop, failed = threading.Event(), threading.Event(), threading.Event()

        def run() -> None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                try:
                    conn.execute("PRAGMA synchronous=NORMAL")
                    while True:
                        due.wait(1.0)
                        if stop.is_set():
                            return  # the writer's close checkpoints what is left
                        due.clear()
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        if min_interval:
                            stop.wait(min_interval)
                finally:
                    conn.close()
            except sqlite3.Error:
                failed.set()

        thread = threading.Thread(target=run, name="stripectl-checkpointer", daemon=True)
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpoint_due, self._checkpointer_failed = due, failed
        thread.start()
        try:
            yield
        finally:
            stop.set()
            due.set()
            thread.join()
            self._checkpoints_inline()

    def _checkpoints_inline(self) -> None:
        self._checkpoint_due = None
        self.conn.execute("PRAGMA wal_autocheckpoint=1000")

    def data_version(self) -> int:
        """Changes when another connection commits (SQLite's PRAGMA data_version);
        this connection's own commits leave it as it is."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def meta_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        """Call inside `transaction()`."""
        self.db.table("meta").upsert({"key": key, "value": value}, pk="key")

    def query(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        self.conn.close()


def _connect(path: str, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
    else:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        # Before any pragma that changes the file (journal_mode=WAL converts a
        # rollback-journal mirror): a newer schema is refused untouched.
        _refuse_newer_schema(conn, path)
        # Takes effect only when the file is created (a no-op on an existing WAL
        # mirror). `events` rows are ~3.5 KB (raw bodies): with 4 KB pages each
        # needs a page of its own; 16 KB pages cut the replay bench's SQLite
        # write + checkpoint cost from ~40 to ~28 us per delivery, 64 KB pages
        # to ~11-13 (fewer WAL frames and page splits; a new mirror starts at
        # ~2 MB instead of ~0.5).
        conn.execute("PRAGMA page_size=65536")
        _switch_to_wal(conn)
        # NORMAL in WAL mode still survives a process kill; only a power cut can
        # lose the last commits, never corrupt the file.
        conn.execute("PRAGMA synchronous=NORMAL")
        # Delivery ids are sha256 hex: inserts and dedupe lookups hit random
        # index pages. The default 2 MB cache stops holding them past ~20k
        # events; 16 MB took the bench's 50k-row insert from ~42 to ~34 us/row.
        conn.execute("PRAGMA cache_size=-16000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _refuse_newer_schema(conn: sqlite3.Connection, path: str) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            f"{path} has schema version {version}, newer than this stripectl "
            f"understands ({SCHEMA_VERSION}); it was not changed",
            hint="upgrade stripectl",
        )


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """journal_mode=WAL needs a moment of exclusive access and SQLite does not
    wait for it with the busy timeout: when several processes open a new mirror
    at once, the losers get "database is locked" at once. Retry for a while."""
    deadline = time.monotonic() + 30
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _migrate(store: Store) -> None:
    version = int(store.conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{store.path} has schema version {version}, newer than this stripectl "
            f"understands ({SCHEMA_VERSION})",
            hint="upgrade stripectl",
        )
    while version < SCHEMA_VERSION:
        with store.transaction():
            # Re-read under the write lock: two processes opening a new mirror
            # at once must not both run the same migration.
            version = int(store.conn.execute("PRAGMA user_version").fetchone()[0])
            if version >= SCHEMA_VERSION:
                break
            MIGRATIONS[version](store.db)
            version += 1
            store.conn.execute(f"PRAGMA user_version = {version}")
            store.meta_set(f"migrated_v{version}", json.dumps(int(time.time())))


def open_store(path: str, *, dry_run: bool = False) -> Store:
    """Open (creating and migrating) the mirror at `path`.

    With `dry_run`, nothing on disk is touched: an existing file is opened
    read-only, a missing one is replaced by an empty in-memory mirror.
    """
    try:
        if dry_run:
            if path != ":memory:" and Path(path).exists():
                store = Store(_connect(path, readonly=True), path=path, readonly=True)
                version = int(store.conn.execute("PRAGMA user_version").fetchone()[0])
                if version != SCHEMA_VERSION:
                    raise StoreError(
                        f"{path} is at schema version {version}; run once without "
                        "--dry-run to migrate it"
                    )
                return store
            store = Store(_connect(":memory:", readonly=False), path=":memory:")
            _migrate(store)
            store.readonly = True
            return store
        parent = Path(path).parent
        if path != ":memory:" and not parent.exists():
            raise StoreError(f"cannot create the mirror {path}: folder {parent} does not exist")
        # An empty file (`touch stripectl.db`) is a new mirror too: SQLite fills it.
        is_new = path != ":memory:" and (not Path(path).exists() or Path(path).stat().st_size == 0)
        store = Store(_connect(path, readonly=False), path=path)
        if is_new:
            # The inbox keeps raw webhook bodies (customer data, PaymentIntent
            # client secrets): owner-only, like a key file.
            os.chmod(path, 0o600)
        _migrate(store)
        return store
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open the mirror {path}: {exc}") from exc
