"""Opening the mirror, its schema and its migrations.

`Store` is the one handle the store modules get, whatever the engine: a
SQLite file (the embedded default) or a PostgreSQL database (`--db
postgresql://...`, store/engine/postgres.py). Every write goes through
`Store.transaction()`, which takes the mirror's write lock up front: two
stripectl processes on one mirror serialise instead of interleaving, and a
killed process leaves either a committed transaction or nothing.

Migrations live in store/migrations.py, written once for both engines.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from stripectl.errors import CommitOutcomeUnknown, StoreError
from stripectl.store.engine import Engine, open_engine
from stripectl.store.migrations import MIGRATIONS, SCHEMA_VERSION


class Store:
    """A migrated mirror. Reads are free-form; writes happen in `transaction()`."""

    def __init__(self, engine: Engine, *, readonly: bool = False) -> None:
        self.engine = engine
        self.dialect = engine.name
        self.conn = engine.raw  # the driver's connection, for engine-specific tests
        self.path = engine.target
        self.readonly = readonly
        self._errors = engine.errors
        # Whether naming what a transaction touches lets writers run side by
        # side (PostgreSQL); on SQLite every writer holds the file's lock.
        self.concurrent_writers = engine.concurrent_writers

    @contextmanager
    def transaction(self, names: Sequence[str] | None = None) -> Iterator[Store]:
        """A write transaction. Without `names` it excludes every other writer
        of the mirror. With `names` (every delivery, event and object it reads
        to decide or writes: see services/replay.py) it excludes only unnamed
        writers and those naming one of the same, where the engine allows it."""
        if self.readonly:
            raise StoreError("internal: write attempted on a read-only (dry-run) store")
        engine = self.engine
        engine.begin_write(names)
        try:
            yield self
        except self._errors as exc:
            engine.rollback()
            # Disk full, I/O error, read-only file, a lost server: the store's
            # fault, not a bug.
            raise StoreError(f"cannot write to the mirror {self.path}: {_line(exc)}") from exc
        except BaseException:
            engine.rollback()
            raise
        else:
            try:
                engine.commit()
            except self._errors as exc:
                engine.rollback()
                # An I/O error in the sync after the WAL write can leave a commit
                # that recovery finds on the next open (and a server may have
                # committed before the connection broke): nobody can say "not stored".
                raise CommitOutcomeUnknown(
                    f"cannot commit to the mirror {self.path}: {_line(exc)}"
                ) from exc
            engine.after_commit()

    def durable_commits(self, *, lock_timeout: float) -> str:
        """From now on a COMMIT returns only once it is on disk (survives a
        power cut or a kernel crash, not just a killed process); `lock_timeout`:
        how long a transaction waits for another writer's lock before failing
        (nothing written). Returns the setting as the engine reports it."""
        return self.engine.durable_commits(lock_timeout)

    def background_checkpoints(self, min_interval: float = 0.0) -> Any:
        """For one long writer (a large replay), or the listener with
        `min_interval` between checkpoints: see the engine's docstring."""
        if self.readonly:
            return nullcontext()
        return self.engine.background_checkpoints(min_interval)

    def write_batch(self) -> Any:
        """Statements inside need no results (inserts, upserts): a server
        engine sends them all before reading any answer. Errors surface at
        the end of the block, still inside the transaction."""
        return self.engine.write_batch()

    def data_version(self) -> int:
        """Changes when another connection commits; this connection's own
        commits leave it as it is."""
        return self.engine.data_version()

    # -- SQL ----------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """Run one statement of the store's SQL (`?` placeholders); returns a cursor."""
        try:
            return self.engine.execute(sql, params)
        except self._errors as exc:
            raise StoreError(f"cannot read the mirror {self.path}: {_line(exc)}") from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self.engine.executemany(sql, rows)
        except self._errors as exc:
            raise StoreError(f"cannot write to the mirror {self.path}: {_line(exc)}") from exc

    def replace_rows(
        self, table: str, columns: Sequence[str], pk: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert `rows`, each replacing a stored row with the same `pk`
        (call inside `transaction()`). Outside `write_batch()` a server
        engine loads them in bulk: many rows cost less there than in a batch."""
        try:
            self.engine.replace_rows(table, columns, pk, rows)
        except self._errors as exc:
            raise StoreError(f"cannot write to the mirror {self.path}: {_line(exc)}") from exc

    def query(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        cur = self.execute(sql, params)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def columns(self, table: str) -> dict[str, str]:
        return self.engine.columns(table)

    def upsert(self, table: str, row: dict[str, Any], pk: str) -> None:
        """Insert `row`, or update the columns it carries (call inside `transaction()`)."""
        cols = list(row)
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c != pk)
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        self.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT({pk}) {action}",
            tuple(row.values()),
        )

    def insert(self, table: str, row: dict[str, Any], returning: str | None = None) -> Any:
        """Insert one row (call inside `transaction()`); with `returning`, the
        value of that column in the new row (an identity id)."""
        cols = list(row)
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        if returning is None:
            self.execute(sql, tuple(row.values()))
            return None
        return self.execute(f"{sql} RETURNING {returning}", tuple(row.values())).fetchone()[0]

    def update(self, table: str, pk: str, key: Any, fields: dict[str, Any]) -> None:
        if fields:
            sets = ", ".join(f"{c} = ?" for c in fields)
            self.execute(f"UPDATE {table} SET {sets} WHERE {pk} = ?", (*fields.values(), key))

    def delete(self, table: str, pk: str, key: Any) -> None:
        self.execute(f"DELETE FROM {table} WHERE {pk} = ?", (key,))

    # -- meta and leases ------------------------------------------------------
    def meta_get(self, key: str) -> str | None:
        row = self.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        """Call inside `transaction()`."""
        self.upsert("meta", {"key": key, "value": value}, pk="key")

    def try_lease(self, name: str) -> bool | None:
        """Hold `name` until `release_lease` or this connection's end (see
        Engine.try_lease); None when the engine cannot tell."""
        try:
            return self.engine.try_lease(name)
        except self._errors as exc:
            raise StoreError(f"cannot take a lease on the mirror {self.path}: {_line(exc)}") from exc

    def release_lease(self, name: str) -> None:
        # A lost connection has released it already.
        with contextlib.suppress(*self._errors):
            self.engine.release_lease(name)

    def close(self) -> None:
        self.engine.close()


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _migrate(store: Store) -> None:
    engine = store.engine
    version = engine.schema_version()
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
            version = engine.schema_version()
            if version >= SCHEMA_VERSION:
                break
            migration = MIGRATIONS[version]
            migration(engine.schema_builder())
            version += 1
            now = int(time.time())
            engine.set_schema_version(version, migration.__name__, now)
            store.meta_set(f"migrated_v{version}", json.dumps(now))


def mirror_exists(target: str, *, schema: str | None = None) -> bool:
    """Whether a mirror is at `target` (a file, or a migrated schema on a
    server), without creating one."""
    from stripectl.store.engine import is_url

    if not is_url(target):
        return target == ":memory:" or Path(target).exists()
    try:
        store = open_store(target, dry_run=True, schema=schema)
    except StoreError as exc:
        if "schema version" in exc.message:
            return True  # there, at another version
        raise
    try:
        return store.path != ":memory:"
    finally:
        store.close()


def open_store(path: str, *, dry_run: bool = False, schema: str | None = None) -> Store:
    """Open (creating and migrating) the mirror at `path`: a file path or a
    postgresql:// URL (then `schema`, default `stripectl`, holds its tables).

    With `dry_run`, nothing is written: an existing mirror is opened
    read-only, a missing one is replaced by an empty in-memory mirror.
    """
    engine: Engine | None = None
    try:
        engine, empty = open_engine(path, readonly=dry_run, schema=schema)
        store = Store(engine, readonly=dry_run and not empty)
        if dry_run and not empty:
            version = engine.schema_version()
            if version != SCHEMA_VERSION:
                raise StoreError(
                    f"{store.path} is at schema version {version}; run once without "
                    "--dry-run to migrate it"
                )
            return store
        _migrate(store)
        store.readonly = dry_run
        return store
    except StoreError:
        if engine is not None:
            engine.close()
        raise
    except Exception as exc:
        if engine is None or not isinstance(exc, engine.errors):
            raise
        engine.close()
        raise StoreError(f"cannot open the mirror {engine.target}: {_line(exc)}") from exc
