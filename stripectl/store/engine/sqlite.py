"""SQLite, the embedded default: one file in WAL mode.

Readers never block the writer and a killed process leaves either a
committed transaction or nothing. A write transaction takes the file's write
lock up front (BEGIN IMMEDIATE): two stripectl processes on one file
serialise instead of interleaving.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stripectl.errors import StoreError


class SqliteEngine:
    name = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    concurrent_writers = False

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.raw = conn
        self.target = path
        self._checkpoint_due: threading.Event | None = None
        self._checkpointer_failed = threading.Event()

    @classmethod
    def open(cls, path: str, *, readonly: bool) -> tuple[SqliteEngine, bool]:
        try:
            return cls._open(path, readonly=readonly)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the mirror {path}: {exc}") from exc

    @classmethod
    def _open(cls, path: str, *, readonly: bool) -> tuple[SqliteEngine, bool]:
        """With `readonly` (a dry run) nothing on disk is touched: an existing
        file is opened read-only, a missing one is replaced by an empty
        in-memory mirror (the flag returned says so)."""
        if readonly:
            if path != ":memory:" and Path(path).exists():
                return cls(_connect(path, readonly=True), path), False
            return cls(_connect(":memory:", readonly=False), ":memory:"), True
        parent = Path(path).parent
        if path != ":memory:" and not parent.exists():
            raise StoreError(f"cannot create the mirror {path}: folder {parent} does not exist")
        # An empty file (`touch stripectl.db`) is a new mirror too: SQLite fills it.
        is_new = path != ":memory:" and (not Path(path).exists() or Path(path).stat().st_size == 0)
        engine = cls(_connect(path, readonly=False), path)
        if is_new:
            # The inbox keeps raw webhook bodies (customer data, PaymentIntent
            # client secrets): owner-only, like a key file.
            Path(path).chmod(0o600)
        return engine, False

    # -- statements -------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)

    def replace_sql(self, table: str, columns: Sequence[str], pk: str) -> str:
        return (
            f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )

    def replace_rows(
        self, table: str, columns: Sequence[str], pk: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        self.raw.executemany(self.replace_sql(table, columns, pk), rows)

    def newest_per_group_sql(
        self, table: str, columns: str, group: str, order: Sequence[str], where: str
    ) -> str:
        # SQLite takes a bare column of a GROUP BY query with a single max()
        # from the row holding that max (documented in "SELECT", bare columns
        # in an aggregate query). Keys: an integer, then text.
        assert len(order) == 2
        return (
            f"SELECT {columns}, max(printf('%020d|%s', coalesce({order[0]}, 0), {order[1]})) "
            f"AS newest_key FROM {table} WHERE {where} GROUP BY {group}"
        )

    def columns(self, table: str) -> dict[str, str]:
        return {r[1]: str(r[2]) for r in self.raw.execute(f"PRAGMA table_info({table})")}

    def tables(self) -> list[str]:
        return [
            str(r[0])
            for r in self.raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]

    # -- transactions -----------------------------------------------------
    def begin_write(self, names: Sequence[str] | None = None) -> None:
        try:
            self.raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot lock the mirror {self.target}: {exc}") from exc

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        # A failed COMMIT (disk full) may have rolled back already.
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def data_version(self) -> int:
        """SQLite's PRAGMA data_version: this connection's own commits leave it as it is."""
        return int(self.raw.execute("PRAGMA data_version").fetchone()[0])

    def write_batch(self) -> Any:
        return contextlib.nullcontext()  # in-process: nothing to save

    def after_commit(self) -> None:
        if self._checkpoint_due is not None:
            self._checkpoint_due.set()
            if self._checkpointer_failed.is_set():
                self._checkpoints_inline()

    def durable_commits(self, lock_timeout: float) -> str:
        """synchronous=FULL makes SQLite fdatasync the WAL at every commit, so
        one commit of many deliveries costs one sync."""
        self.raw.execute("PRAGMA synchronous=FULL")
        self.raw.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        level = int(self.raw.execute("PRAGMA synchronous").fetchone()[0])
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
        path = self.target
        if path == ":memory:":
            yield
            return
        due, stop, failed = threading.Event(), threading.Event(), threading.Event()

        def run() -> None:
            try:
                conn = sqlite3.connect(path, isolation_level=None, timeout=30)
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
        self.raw.execute("PRAGMA wal_autocheckpoint=0")
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
        self.raw.execute("PRAGMA wal_autocheckpoint=1000")

    # -- scrubbing (inbox prune) ------------------------------------------------
    def scrub_begin(self) -> None:
        self.raw.execute("PRAGMA secure_delete = ON")

    def scrub_end(self, tables: Sequence[str]) -> None:
        """SQLite leaves deleted bytes in free pages and in the WAL."""
        if tables:
            self.raw.execute("VACUUM")
        self.raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- leases -------------------------------------------------------------
    def try_lease(self, name: str) -> bool | None:
        return None  # a file has no sessions: the ledger uses expiry and a pid check

    def release_lease(self, name: str) -> None:
        return None

    # -- migrations ---------------------------------------------------------
    def schema_version(self) -> int:
        return int(self.raw.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int, name: str, now: int) -> None:
        self.raw.execute(f"PRAGMA user_version = {int(version)}")

    def schema_builder(self) -> Any:
        """What a migration function gets: a sqlite_utils.Database."""
        import sqlite_utils

        return sqlite_utils.Database(self.raw)

    def close(self) -> None:
        self.raw.close()


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
    from stripectl.store.migrations import SCHEMA_VERSION

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
