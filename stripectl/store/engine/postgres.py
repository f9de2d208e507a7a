"""PostgreSQL, for teams: one mirror shared by many processes and machines.

Driver: psycopg 3, synchronous, raw SQL (the store already is raw SQL; an ORM
or an async driver would add a layer for nothing: every caller is a plain
function in a thread). Imported only when `--db` is a postgresql:// URL.

What a SQLite file gets from its write lock, this engine takes explicitly:

* a write transaction first takes `pg_advisory_xact_lock(<mirror key>)`, so
  the read-decide-write of a chunk (dedupe lookups, newest-wins against the
  stored row, the ledger's claim) runs with no other writer of this mirror in
  between, on any machine; readers never wait. The lock ends with the
  transaction, also when the connection dies;
* ledger leases are session advisory locks: a holder whose connection is gone
  has lost its lease at once (`try_lease`);
* `data_version` is a sequence every write transaction advances under the
  lock, minus this connection's own advances (SQLite's PRAGMA data_version);
* the schema version is a `schema_migrations` table, migrated under the
  same lock, so two machines opening a new mirror at once run each
  migration once.

The mirror lives in its own schema (`--schema`, default `stripectl`), found
through search_path, so the store's SQL stays unqualified.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stripectl.errors import ConfigError, StoreError
from stripectl.store.engine.pg_sql import native

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Names a write transaction locks one by one at most (see begin_write).
MAX_NAMED_LOCKS = 1024


def redact_url(url: str) -> str:
    """The URL without its password (error messages, the --json output)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for `parts` (schema-scoped names)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresEngine:
    name = "postgres"
    concurrent_writers = True

    def __init__(self, conn: Any, url: str, schema: str) -> None:
        import psycopg

        self.raw = conn
        self._url = url  # with its password: for reconnecting, never printed
        self._in_tx = False
        self._seq_in_tx: int | None = None
        self._session_settings: list[str] = []
        self.target = redact_url(url)
        self.schema = schema
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        self._write_key = lock_key("stripectl", schema, "write")
        self._own_writes = 0
        self._leases: set[str] = set()
        self._columns: dict[str, dict[str, str]] = {}

    @classmethod
    def open(cls, url: str, *, readonly: bool, schema: str) -> tuple[Any, bool]:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigError(
                f"--schema {schema!r} is not a plain PostgreSQL name",
                hint="use lower-case letters, digits and _ (at most 63), starting with a letter",
            )
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "a postgresql:// mirror needs the PostgreSQL driver, which is not installed",
                hint="pip install 'stripectl[postgres]'",
            ) from None
        try:
            conn = _connect(url)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the mirror {redact_url(url)}: {_first_line(exc)}",
                hint="check the URL, that the server runs and that it accepts this role",
            ) from exc
        engine = cls(conn, url, schema)
        try:
            conn.execute(f'SET search_path TO "{schema}"')
            if readonly:
                version = engine.schema_version()
                if version == 0:
                    # Nothing there yet: a dry run simulates on an empty mirror.
                    conn.close()
                    from stripectl.store.engine.sqlite import SqliteEngine

                    return SqliteEngine.open(":memory:", readonly=False)[0], True
                conn.execute("SET default_transaction_read_only = on")
            else:
                engine._bootstrap()
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(
                f"cannot open the mirror {engine.target} (schema {schema}): {_first_line(exc)}"
            ) from exc
        return engine, False

    def _bootstrap(self) -> None:
        """The schema, the migrations table and the write counter, under the write lock."""
        ready = self.raw.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
            (f'"{self.schema}".schema_migrations', f'"{self.schema}".write_seq'),
        ).fetchone()[0]
        if ready:  # the usual case: opening takes no lock
            return
        self.raw.execute("BEGIN")
        try:
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_key,))
            self.raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            self.raw.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            self.raw.execute("CREATE SEQUENCE IF NOT EXISTS write_seq")
            self.raw.execute("COMMIT")
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise

    # -- statements -------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        import psycopg

        try:
            return psycopg.RawCursor(self.raw).execute(native(sql), params)
        except psycopg.OperationalError:
            # A read outside a transaction on a connection the server dropped
            # (a restart, a failover): reconnect and read again, once.
            if self._in_tx or not self.raw.broken:
                raise
            self._reconnect()
            return psycopg.RawCursor(self.raw).execute(native(sql), params)

    def _reconnect(self) -> None:
        """A new session: leases of the old one are gone with it; its
        session settings (durable_commits) are set again."""
        with contextlib.suppress(Exception):
            self.raw.close()
        self.raw = _connect(self._url)
        self.raw.execute(f'SET search_path TO "{self.schema}"')
        for setting in self._session_settings:
            self.raw.execute(setting)
        self._leases.clear()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        import psycopg

        # psycopg 3 sends the whole batch in pipeline mode: one round trip
        # per batch, not one per row. A RawCursor: see pg_sql.py.
        with psycopg.RawCursor(self.raw) as cur:
            cur.executemany(native(sql), rows)

    def replace_sql(self, table: str, columns: Sequence[str], pk: str) -> str:
        sets = [f"{c} = excluded.{c}" for c in columns if c != pk]
        if table in _insertion_ordered():
            # As SQLite's INSERT OR REPLACE: the replaced row moves to the end.
            sets.append("rowid = DEFAULT")
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({pk}) DO UPDATE SET {', '.join(sets)}"
        )

    def replace_rows(
        self, table: str, columns: Sequence[str], pk: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        from stripectl.store.engine.pg_bulk import replace_rows

        replace_rows(self, table, columns, pk, rows)

    def newest_per_group_sql(
        self, table: str, columns: str, group: str, order: Sequence[str], where: str
    ) -> str:
        keys = ", ".join(
            f"coalesce({order[0]}, 0) DESC" if i == 0 else f"{c} DESC" for i, c in enumerate(order)
        )
        return (
            f"SELECT DISTINCT ON ({group}) {columns} FROM {table} WHERE {where} "
            f"ORDER BY {group}, {keys}"
        )

    def columns(self, table: str) -> dict[str, str]:
        cols = self._columns.get(table)
        if cols is None:
            rows = self.raw.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (self.schema, table),
            ).fetchall()
            cols = {str(r[0]): str(r[1]) for r in rows}
            if cols:
                self._columns[table] = cols
        return dict(cols)

    def tables(self) -> list[str]:
        return [
            str(r[0])
            for r in self.raw.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "AND table_type = 'BASE TABLE' ORDER BY table_name",
                (self.schema,),
            )
        ]

    # -- transactions -----------------------------------------------------
    def begin_write(self, names: Sequence[str] | None = None) -> None:
        import psycopg

        wanted = set(names or ())
        if len(wanted) > MAX_NAMED_LOCKS:
            # A bulk writer (a replay chunk) takes the whole mirror instead:
            # each advisory lock is an entry in the server's shared lock table
            # (max_locks_per_transaction, 64, per connection); --chunk-size
            # 20000 ran out of shared memory, and a 3,000-delivery chunk's
            # ~9,000 cost the server ~50 ms. Listener batches (<= 256
            # deliveries, ~3 names each) stay below, side by side; they wait
            # for such a chunk as for a sync. Coarser locks only exclude more.
            wanted.clear()
        keys = sorted({lock_key("stripectl", self.schema, "name", n) for n in wanted})
        if keys:
            # Named writers (replay chunks) share the mirror lock and exclude
            # each other name by name, all names taken in one statement in key
            # order (no two can deadlock); unnamed writers (sync, the ledger,
            # migrations) exclude everyone.
            array = "{" + ",".join(map(str, keys)) + "}"
            locks = (
                f"SELECT pg_advisory_xact_lock_shared({self._write_key}); "
                "SELECT count(pg_advisory_xact_lock(k)) FROM "
                f"(SELECT k FROM unnest('{array}'::bigint[]) AS k ORDER BY k) AS ordered; "
            )
        else:
            locks = f"SELECT pg_advisory_xact_lock({self._write_key}); "
        # One round trip: integers only in the text, so no parameters (and a
        # simple query may hold several statements).
        sql = f"BEGIN; {locks}SELECT nextval('write_seq')"
        for attempt in range(1, 6):
            try:
                if self.raw.broken:
                    self._reconnect()
                cur = self.raw.execute(sql)
                seq = None
                while cur.nextset():
                    if cur.description:
                        seq = cur.fetchone()[0]
                break
            except psycopg.Error as exc:
                self._rollback_quietly()
                dropped = attempt == 1 and self.raw.broken  # before anything was done
                if dropped or (isinstance(exc, psycopg.errors.DeadlockDetected) and attempt < 5):
                    continue
                raise StoreError(
                    f"cannot lock the mirror {self.target}: {_first_line(exc)}"
                ) from exc
        self._in_tx = True
        self._own_writes += 1
        # Every writer advances the sequence after taking its locks: anyone
        # who committed what this transaction's names cover did so before.
        self._seq_in_tx = None if seq is None else int(seq)

    def commit(self) -> None:
        self._in_tx = False
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self._in_tx = False
        self._rollback_quietly()

    def _rollback_quietly(self) -> None:
        import psycopg

        # A lost connection: the server has rolled the transaction back already.
        with contextlib.suppress(psycopg.Error):
            self.raw.execute("ROLLBACK")

    def data_version(self) -> int:
        if self._in_tx and self._seq_in_tx is not None:
            return self._seq_in_tx - self._own_writes
        last, called = self.raw.execute("SELECT last_value, is_called FROM write_seq").fetchone()
        return (int(last) if called else 0) - self._own_writes

    def after_commit(self) -> None:
        return None

    def write_batch(self) -> Any:
        # psycopg's pipeline mode: one round trip for the block (a listener
        # batch's events insert, mirror upserts and meta write).
        return self.raw.pipeline()

    def durable_commits(self, lock_timeout: float) -> str:
        """A COMMIT returns once the server has flushed its WAL
        (synchronous_commit=on, whatever the role's default); lock_timeout
        bounds the wait for another writer's advisory locks too."""
        self._session_settings = [
            "SET synchronous_commit = on",
            f"SET lock_timeout = {max(1, int(lock_timeout * 1000))}",
        ]
        for setting in self._session_settings:
            self.raw.execute(setting)
        value = self.raw.execute("SHOW synchronous_commit").fetchone()[0]
        return f"synchronous_commit={value}"

    @contextmanager
    def background_checkpoints(self, min_interval: float = 0.0) -> Iterator[None]:
        yield  # the server checkpoints on its own

    # -- scrubbing (inbox prune) ------------------------------------------------
    def scrub_begin(self) -> None:
        return None

    def scrub_end(self, tables: Sequence[str]) -> None:
        """An UPDATE leaves the old row versions in the table's pages:
        VACUUM FULL rewrites the table without them (it locks the table for
        the rewrite). The server's WAL recycles on its own schedule."""
        for table in dict.fromkeys(tables):
            self.raw.execute(f'VACUUM FULL "{table}"')
    def try_lease(self, name: str) -> bool | None:
        if name in self._leases:
            return True
        row = self.raw.execute(
            "SELECT pg_try_advisory_lock(%s)", (lock_key("stripectl", self.schema, "lease", name),)
        ).fetchone()
        if row[0]:
            self._leases.add(name)
        return bool(row[0])

    def release_lease(self, name: str) -> None:
        if name in self._leases:
            self._leases.discard(name)
            self.raw.execute(
                "SELECT pg_advisory_unlock(%s)", (lock_key("stripectl", self.schema, "lease", name),)
            )

    # -- migrations ---------------------------------------------------------
    def schema_version(self) -> int:
        row = self.raw.execute(
            "SELECT to_regclass(%s)", (f'"{self.schema}".schema_migrations',)
        ).fetchone()
        if row[0] is None:
            return 0
        value = self.raw.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        return int(value[0])

    def set_schema_version(self, version: int, name: str, now: int) -> None:
        self.raw.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
            (version, name, now),
        )
        self._columns.clear()

    def schema_builder(self) -> Any:
        from stripectl.store.engine.pg_schema import PgSchema

        return PgSchema(self)

    def close(self) -> None:
        self.raw.close()


def _connect(url: str) -> Any:
    import psycopg

    conn = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="stripectl")
    # Raw bodies (~3 KB) are over the TOAST threshold, so the server
    # compresses each one: lz4 instead of the default pglz cut the insert
    # cost of an `events` row from ~250 to ~150 us on bench/replay.py's
    # bodies for ~6% more space. A server built without lz4 keeps pglz.
    with contextlib.suppress(psycopg.Error):
        conn.execute("SET default_toast_compression = lz4")
    return conn


def _insertion_ordered() -> frozenset[str]:
    from stripectl.store.engine.pg_schema import INSERTION_ORDERED

    return INSERTION_ORDERED


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

