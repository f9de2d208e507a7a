"""`stripectl history ID`: every stored delivery that touched one object, and the verdict."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stripectl.cli.common import EXIT_CODES_HELP, Ctx, DbOpt, DebugOpt, JsonOpt, guarded, make_ctx
from stripectl.cli.stripe_opts import GraceOpt, check_grace

if TYPE_CHECKING:
    from stripectl.services.history import History, Section

HELP = f"""One object's story from the mirror: deliveries, current state, access.

ID is a subscription (sub_), customer (cus_), invoice (in_), checkout session
(cs_), payment intent (pi_) or your own user id. Lists every stored delivery
that touched it or the objects the mirror links to it (a subscription's
invoices and checkout sessions; a customer's subscriptions, invoices,
sessions and payments; a user's subscriptions and sessions), oldest first:
event time, type, source (file:line, listener, api), outcome and reason, and
the status before and after. Then what the mirror holds now, and the access
decision with its reason (as `stripectl access --offline` decides).
Offline: reads the mirror only. Rejected deliveries are listed, but their
(unverified) contents are not shown.

Examples:

  stripectl history sub_1QabcXYZ

  stripectl history user_42 --json

Exit 0 when the mirror knows the object, 1 when it knows nothing about it.
{EXIT_CODES_HELP}
"""


@guarded
def history(
    tctx: typer.Context,
    subject_id: Annotated[
        str, typer.Argument(metavar="ID", help="sub_, cus_, in_, cs_, pi_ id or a user id.")
    ],
    grace: GraceOpt = "retry",
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    from stripectl.errors import StoreError, UsageError
    from stripectl.services.history import history as build
    from stripectl.store import open_store

    subject_id = subject_id.strip()
    if not subject_id:
        raise UsageError("ID is empty")
    grace = check_grace(grace)
    from stripectl.store import mirror_exists
    from stripectl.store.engine.postgres import redact_url

    # A file or a server's schema: history reads a mirror, it never starts one.
    if ctx.db != ":memory:" and (
        not mirror_exists(ctx.db, schema=ctx.schema) or Path(ctx.db).is_dir()
    ):
        raise StoreError(f"no mirror at {redact_url(ctx.db)}",
                         hint="pass --db, or fill one with replay-webhook / sync")
    from stripectl.store.history import pending

    store = open_store(ctx.db, schema=ctx.schema)
    try:
        backlog = pending(store)
        if backlog >= 100_000:
            ctx.note(f"indexing {backlog:,} stored deliveries for history "
                     "(once: later runs index only what arrived since)")
        story = build(store, subject_id, grace=grace)
    finally:
        store.close()
    known = story.known
    if ctx.json:
        ctx.emit_json(story.to_json())
    else:
        _print(ctx, story)
    if not known:
        ctx.note(f"note: the mirror knows nothing about {subject_id}")
    raise typer.Exit(0 if known else 1)


def _cell(key: str, row: dict[str, Any]) -> str:
    from stripectl.render import ts

    if key == "status_change":
        before, after = row.get("status_before"), row.get("status_after")
        if before and after and before != after:
            return f"{before} -> {after}"
        return after or ""
    if key == "created" and row.get("created") is None and row.get("received_at") is not None:
        return f"received {ts(row['received_at'])}"
    if key == "object_id" and not row.get("object_id"):
        return "(unverified body mentions it)"
    if key == "reason":
        return " ".join(str(x) for x in (row.get("reason"), row.get("note")) if x)
    value = row.get(key)
    if key in ("created", "last_event_created", "received_at") and value is not None:
        return ts(value)
    return "" if value is None else str(value)


def _table(section: Section) -> Any:
    from rich.table import Table
    from rich.text import Text

    from stripectl.printable import printable
    from stripectl.redact import redact
    from stripectl.style import style_for

    table = Table(title=section.title, title_justify="left")
    for _, title in section.columns:
        table.add_column(title, overflow="fold")
    for row in section.rows:
        cells = [printable(redact(_cell(k, row))) for k, _ in section.columns]
        # Text, never markup: ids and reasons come from the input.
        table.add_row(*(Text(c, style=style_for(c)) for c in cells))
    return table


def _print(ctx: Ctx, story: History) -> None:
    from rich.text import Text

    from stripectl.printable import printable
    from stripectl.redact import redact
    from stripectl.style import styled

    s = story.subject
    ctx.out.print(Text(printable(f"{s.kind.replace('_', ' ')} {s.id}")), style="bold")
    for section in story.sections:
        if section.rows:
            ctx.out.print(_table(section))
        elif section.note:
            ctx.out.print(Text(f"{section.title}: {section.note}"))
    a = story.access
    if a.get("granted") is None:
        ctx.out.print(Text.assemble(styled("access: no decision", "anomaly"), f": {a['why']}"))
        return
    verdict = "GRANTED" if a["granted"] else "DENIED"
    why = printable(redact(f": {a['subject']}: {a['why']}"))
    ctx.out.print(Text.assemble("access ", styled(verdict, verdict), why))
    for note in a.get("notes") or []:
        ctx.note(f"note: {note}")


def register(app: typer.Typer) -> None:
    app.command("history", help=HELP, no_args_is_help=True)(history)
