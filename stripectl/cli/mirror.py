"""`stripectl mirror copy`: move a mirror between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Annotated

import typer

from stripectl.cli.common import EXIT_CODES_HELP, DbOpt, DebugOpt, JsonOpt, guarded, make_ctx
from stripectl.errors import UsageError

mirror_app = typer.Typer(
    name="mirror",
    help="The mirror as a whole. Example: stripectl mirror copy stripectl.db postgresql://ops@db/stripe",
    no_args_is_help=True,
)

COPY_HELP = f"""Copy every table of the mirror SRC into a new mirror DST, then verify it.

With DST alone, SRC is the mirror --db names (or STRIPECTL_DB, or ./stripectl.db).

SRC and DST are each a SQLite file or a postgresql:// URL: start with the
file and move the team to the server (or back) without losing the delivery
history, the idempotency ledger or the reconcile runs. DST is created and
migrated if need be and must hold no rows; the copy is one transaction (a
failed copy leaves DST empty). SRC is only read, in one consistent snapshot.
Each table is then verified: its row count and a checksum over every value
of every row, read back from DST.

Examples:

  stripectl mirror copy stripectl.db postgresql://ops@db.internal/payments

  STRIPECTL_DB=ci.db stripectl mirror copy postgresql://ops@db/payments

  stripectl mirror copy postgresql://ops@db/payments --src-schema stripectl backup.db --json

{EXIT_CODES_HELP} (6: DST not empty, or verification failed)
"""


@mirror_app.command("copy", help=COPY_HELP)
@guarded
def copy_cmd(
    tctx: typer.Context,
    mirrors: Annotated[
        list[str],
        typer.Argument(
            metavar="[SRC] DST",
            help="The mirror to copy (default: --db) and the new one: files or postgresql:// URLs.",
            show_default=False,
        ),
    ],
    src_schema: Annotated[
        str | None,
        typer.Option(help="PostgreSQL schema of SRC (default: --schema, else stripectl).",
                     show_default=False),
    ] = None,
    dst_schema: Annotated[
        str | None,
        typer.Option(help="PostgreSQL schema of DST (default: --schema, else stripectl).",
                     show_default=False),
    ] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    if len(mirrors) not in (1, 2):
        raise UsageError("expected [SRC] DST: one or two mirrors")
    src, dst = (ctx.db, mirrors[0]) if len(mirrors) == 1 else (mirrors[0], mirrors[1])
    from stripectl.cli.common import progress
    from stripectl.services.mirror_copy import copy

    with progress(ctx, "copying rows") as advance:
        report = copy(
            src,
            dst,
            source_schema=src_schema or ctx.schema,
            destination_schema=dst_schema or ctx.schema,
            progress=lambda _table, n: advance(n),
        )
    tables: list[dict[str, str | int]] = [
        {"table": t.table, "rows": t.rows, "checksum": t.hex} for t in report.tables
    ]
    if ctx.json:
        ctx.emit_json({"source": report.source, "destination": report.destination,
                       "tables": tables, "verified": report.verified})
        return
    from rich.table import Table

    table = Table("table", "rows", "checksum")
    for t in report.tables:
        table.add_row(t.table, str(t.rows), t.hex)
    ctx.out.print(table)
    total = sum(t.rows for t in report.tables)
    ctx.out.print(
        f"copied {total} rows in {len(tables)} tables; counts and checksums verified",
        highlight=False, markup=False,
    )
