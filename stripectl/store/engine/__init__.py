"""The two storage engines behind `Store`, and how a `--db` value picks one.

`Store` (store/db.py) and the store modules speak one SQL: `?` placeholders,
`INSERT ... ON CONFLICT(pk) DO UPDATE`, `IN (...)` lists, standard
aggregates. What differs between SQLite and PostgreSQL lives behind `Engine`:

* sqlite.py: PRAGMAs, WAL mode and its checkpoints, `BEGIN IMMEDIATE`,
  `PRAGMA data_version`, `user_version` migrations, `INSERT OR REPLACE`;
* postgres.py: the psycopg connection, a transaction-scoped advisory lock
  that gives writers what SQLite's file lock gives them, session advisory
  locks for ledger leases, a migrations table, the schema (`--schema`).

Nothing above store/ knows which one it talks to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

DEFAULT_SCHEMA = "stripectl"


class Cursor(Protocol):
    description: Any

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int = ...) -> list[Any]: ...
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[Any]: ...


class Engine(Protocol):
    """What `Store` needs from a database. SQL is the store's dialect (see above)."""

    name: str  # "sqlite" | "postgres"
    target: str  # what error messages call the mirror (a path, a URL without password)
    raw: Any  # the driver's connection (sqlite3.Connection | psycopg.Connection)
    errors: tuple[type[BaseException], ...]  # the driver's database errors
    # Whether write transactions that name what they touch (`begin_write(names)`)
    # run side by side: SQLite has one write lock per file, PostgreSQL locks names.
    concurrent_writers: bool

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def begin_write(self, names: Sequence[str] | None = None) -> None:
        """Start a write transaction holding the mirror's write lock: writers
        on one mirror run one at a time, whatever process or machine they are on.
        With `names` (everything the transaction reads to decide and writes),
        it excludes only writers of the same names and unnamed writers."""
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def data_version(self) -> int:
        """Changes whenever another connection has committed a write since."""
    def background_checkpoints(self, min_interval: float = ...) -> AbstractContextManager[None]: ...
    def durable_commits(self, lock_timeout: float) -> str:
        """Every later COMMIT returns only once it is on disk; the setting in the engine's words."""
    def write_batch(self) -> AbstractContextManager[Any]:
        """Statements that need no results, sent without waiting for each."""
    def after_commit(self) -> None: ...
    def replace_sql(self, table: str, columns: Sequence[str], pk: str) -> str:
        """INSERT that replaces the row with the same `pk` (a re-stored delivery)."""
    def replace_rows(
        self, table: str, columns: Sequence[str], pk: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """`replace_sql` for every row; outside `write_batch()` a server engine
        loads them in bulk (PostgreSQL: COPY, store/engine/pg_bulk.py)."""
    def columns(self, table: str) -> dict[str, str]:
        """Column name -> declared type, in table order."""
    def tables(self) -> list[str]: ...
    def newest_per_group_sql(
        self, table: str, columns: str, group: str, order: Sequence[str], where: str
    ) -> str:
        """One row per `group` value, the largest by `order` (ascending keys)."""
    def scrub_begin(self) -> None: ...
    def scrub_end(self, tables: Sequence[str]) -> None:
        """Make values just set to NULL in `tables` unrecoverable from the files."""
    def try_lease(self, name: str) -> bool | None:
        """Hold `name` for this connection until `release_lease` or until the
        connection ends, whichever comes first. True: held now; False: another
        live connection holds it; None: this engine cannot tell (SQLite: the
        ledger then falls back to lease expiry and a pid check)."""
    def release_lease(self, name: str) -> None: ...
    def schema_version(self) -> int:
        """How many of store/migrations.MIGRATIONS have run (0: a new mirror)."""
    def set_schema_version(self, version: int, name: str, now: int) -> None: ...
    def schema_builder(self) -> Any:
        """What a migration function gets (see store/engine/pg_schema.py)."""
    def close(self) -> None: ...


def is_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def open_engine(
    target: str, *, readonly: bool, schema: str | None = None
) -> tuple[Engine, bool]:
    """The engine for `target` (a path or a postgresql:// URL); the flag says
    whether a dry run found no mirror (and got an empty in-memory one)."""
    if is_url(target):
        from stripectl.store.engine.postgres import PostgresEngine

        return PostgresEngine.open(target, readonly=readonly, schema=schema or DEFAULT_SCHEMA)
    from stripectl.store.engine.sqlite import SqliteEngine

    return SqliteEngine.open(target, readonly=readonly)
