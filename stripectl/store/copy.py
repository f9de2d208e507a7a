"""Copying a whole mirror between engines (`stripectl mirror copy`).

Every table the migrations made is copied row for row, in one transaction
on the destination: a copy that fails leaves the destination as empty as it
was. Each side is then summed up per table as (row count, checksum), the
source inside the read snapshot the copy came from, the destination read
back after the commit; any difference is an error.

The checksum is engine-neutral: each row's values are encoded with a type
tag (NULL, integer, float, bytes; text counts as its UTF-8 bytes, so an
`events.body` kept as TEXT on one engine and BYTEA on the other compares
equal) and hashed; the table's checksum is the sum of the row hashes modulo
2**128, so neither engine's row order nor collation matters.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from stripectl.errors import StoreError
from stripectl.store.db import Store
from stripectl.store.migrations import SCHEMA_VERSION

# Bookkeeping of an engine, not mirror data: each side has its own.
_ENGINE_TABLES = frozenset({"schema_migrations"})
# Engine-specific insertion-order columns (PostgreSQL's stand-in for rowid).
_HIDDEN_COLUMNS = frozenset({"rowid"})
_BATCH = 1000
_MOD = 1 << 128


@dataclass
class TableSum:
    table: str
    rows: int = 0
    checksum: int = 0

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows += 1
        self.checksum = (self.checksum + row_hash(row)) % _MOD

    @property
    def hex(self) -> str:
        return f"{self.checksum:032x}"


@dataclass
class CopyReport:
    source: str
    destination: str
    tables: list[TableSum] = field(default_factory=list)
    verified: bool = False


def row_hash(row: tuple[Any, ...]) -> int:
    h = hashlib.blake2b(digest_size=16)
    for value in row:
        if value is None:
            h.update(b"n")
        elif isinstance(value, bool | int):
            h.update(b"i" + str(int(value)).encode() + b";")
        elif isinstance(value, float):
            h.update(b"f" + struct.pack(">d", value))
        else:
            data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
            h.update(b"b" + str(len(data)).encode() + b":" + data)
    return int.from_bytes(h.digest(), "big")


def data_tables(store: Store) -> list[str]:
    return [t for t in store.engine.tables() if t not in _ENGINE_TABLES]


def data_columns(store: Store, table: str) -> list[str]:
    return [c for c in store.columns(table) if c not in _HIDDEN_COLUMNS]


def _order(table: str, columns: list[str]) -> str:
    # Insertion order where it means something (the inbox); else the key.
    return "rowid" if table == "events" else columns[0]


@contextmanager
def _read_snapshot(store: Store) -> Iterator[None]:
    """One consistent view of the whole source while it is read."""
    if store.dialect == "postgres":
        store.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    else:
        store.execute("BEGIN")
    try:
        yield
    finally:
        store.execute("ROLLBACK")


def _rows(store: Store, table: str, columns: list[str]) -> Iterator[list[tuple[Any, ...]]]:
    cur = store.execute(
        f"SELECT {', '.join(columns)} FROM {table} ORDER BY {_order(table, columns)}"
    )
    try:
        while batch := cur.fetchmany(_BATCH):
            yield [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in batch]
    finally:
        cur.close()


def summarise(store: Store, tables: list[str]) -> list[TableSum]:
    out = []
    for table in tables:
        total = TableSum(table)
        for batch in _rows(store, table, data_columns(store, table)):
            for row in batch:
                total.add(row)
        out.append(total)
    return out


def _check_compatible(src: Store, dst: Store) -> list[str]:
    for store in (src, dst):
        if store.engine.schema_version() != SCHEMA_VERSION:
            raise StoreError(f"{store.path} is not at schema version {SCHEMA_VERSION}")
    tables = data_tables(src)
    if set(tables) != set(data_tables(dst)):
        raise StoreError("the two mirrors do not have the same tables")
    for table in tables:
        if data_columns(src, table) != data_columns(dst, table):
            raise StoreError(f"table {table} has other columns in {dst.path} than in {src.path}")
    for table in tables:
        if table == "meta":
            continue  # holds each mirror's migration times: replaced by the source's
        if dst.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
            raise StoreError(
                f"the destination {dst.path} is not empty (table {table} has rows)",
                hint="copy into a new mirror: a new file, a new database or another --dst-schema",
            )
    return tables


def copy_mirror(
    src: Store, dst: Store, *, progress: Callable[[str, int], None] | None = None
) -> CopyReport:
    """Copy every table of `src` into the empty mirror `dst`, then verify."""
    tables = _check_compatible(src, dst)
    report = CopyReport(source=src.path, destination=dst.path)
    sums: list[TableSum] = []
    with _read_snapshot(src), dst.transaction():
        for table in tables:
            columns = data_columns(src, table)
            if table == "meta":
                dst.execute("DELETE FROM meta")
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            total = TableSum(table)
            convert = _body_for(dst, columns) if table == "events" else None
            for batch in _rows(src, table, columns):
                dst.executemany(sql, batch if convert is None else [convert(r) for r in batch])
                for row in batch:
                    total.add(row)
                if progress is not None:
                    progress(table, len(batch))
            sums.append(total)
            _after_explicit_ids(dst, table, columns)
    report.tables = sums
    copied = {s.table: (s.rows, s.checksum) for s in summarise(dst, tables)}
    for s in sums:
        if copied[s.table] != (s.rows, s.checksum):
            raise StoreError(
                f"verification failed for table {s.table}: {s.rows} rows copied, "
                f"{copied[s.table][0]} read back, checksums {s.hex} / {copied[s.table][1]:032x}"
            )
    report.verified = True
    return report


def _body_for(dst: Store, columns: list[str]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """events.body as the destination keeps it: SQLite TEXT when valid UTF-8
    (else BLOB), PostgreSQL BYTEA (a str bound there would be read as bytea
    escape text). The same bytes either way; the checksum counts bytes."""
    from stripectl.store.events import body_bytes, storable_body

    i = columns.index("body")
    if dst.dialect == "sqlite":
        def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
            body = row[i]
            if body is None or isinstance(body, str):
                return row
            return (*row[:i], storable_body(bytes(body)), *row[i + 1 :])
    else:
        def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
            body = row[i]
            return row if body is None else (*row[:i], body_bytes(body), *row[i + 1 :])
    return convert


def _after_explicit_ids(dst: Store, table: str, columns: list[str]) -> None:
    """An identity column that got explicit values must go on after them."""
    if dst.dialect != "postgres" or "id" not in columns:
        return
    seq = dst.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()[0]
    if seq is not None:
        dst.execute(
            f"SELECT setval(?, coalesce((SELECT max(id) FROM {table}), 0) + 1, false)", (seq,)
        )
