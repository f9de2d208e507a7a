"""Many rows into one PostgreSQL table without a statement per row: COPY.

`executemany` in pipeline mode saves the round trips, not the server's work:
every row is still a statement of its own (bind, plan lookup, executor start
and end, an ON CONFLICT check). On bench/replay.py's `events` rows (3 KB
raw bodies) a chunk's upserts cost ~75-110 us a row, its COPY ~35-50 us
(20,000 rows of a replay loaded both ways, alternately, on the bench's
2-core machine): the per-statement part was about half.

COPY has no ON CONFLICT. The rows go in under a savepoint; when one of them
is already stored (a delivery rejected before that passes now: rare), the
savepoint is rolled back and the same rows go through the engine's replace
statement instead. Whatever a concurrent writer does, the result is the
replace statement's, only cheaper in the usual case.

COPY cannot run inside a pipeline (libpq): inside `write_batch()` the rows
ride the pipeline as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_SAVEPOINT = "stripectl_bulk"


def replace_rows(engine: Any, table: str, columns: Sequence[str], pk: str,
                 rows: Sequence[Sequence[Any]]) -> None:
    """`engine.replace_sql(table, columns, pk)` for every row (see the module doc)."""
    import psycopg
    from psycopg import pq

    conn = engine.raw
    if not rows:
        return
    if conn.pgconn.pipeline_status != pq.PipelineStatus.OFF:
        engine.executemany(engine.replace_sql(table, columns, pk), rows)
        return
    declared = engine.columns(table)
    types = [declared[c] for c in columns]
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        with conn.cursor() as cur, cur.copy(
            # Binary: bytea travels as its bytes, not as hex text twice their size.
            f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
    except psycopg.errors.UniqueViolation:
        conn.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        conn.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        engine.executemany(engine.replace_sql(table, columns, pk), rows)
        return
    conn.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
