"""`stripectl inbox export`: stored deliveries back out as envelope JSONL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Annotated

import typer

from stripectl.cli.common import (
    EXIT_CODES_HELP,
    SUGGEST_COMMANDS,
    DbOpt,
    DebugOpt,
    JsonOpt,
    guarded,
    make_ctx,
)
from stripectl.errors import UsageError

inbox_app = typer.Typer(
    suggest_commands=SUGGEST_COMMANDS,
    name="inbox",
    help="The stored deliveries (events table). Example: stripectl inbox export --output d.jsonl; "
    "stripectl inbox prune --bodies",
    no_args_is_help=True,
)

EXPORT_HELP = f"""Write stored deliveries as envelope JSONL that replay-webhook reads back.

One line per delivery: {{"received_at": ..., "headers": {{...}}, "body": "<raw body>"}},
the body exactly as received (so its signature still verifies), in arrival
order. Events pulled from the Events API (source `api`, trusted by your key)
and deliveries that arrived without a signature have no Stripe-Signature:
replay-webhook reads those back with --unsigned, marked unverified (without
it they are rejected as no_signature); the export counts them on stderr.

Examples:

  stripectl inbox export --since 24h --output deliveries.jsonl

  stripectl inbox export --source listener -o d.jsonl

  stripectl replay-webhook d.jsonl --forward-to http://127.0.0.1:8000/hook --sign-with whsec_...

Data goes to stdout unless --output is given. {EXIT_CODES_HELP}
"""


@inbox_app.command("export", help=EXPORT_HELP)
@guarded
def export(
    tctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help="Only deliveries received since: 2h, 7d, 2026-11-01T00:00Z, unix seconds."),
    ] = None,
    outcome: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this outcome (repeatable): applied, duplicate, stale, anomaly, ignored, rejected.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this source (repeatable): listener, api, or a file-path prefix.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of stdout.", show_default=False),
    ] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    from stripectl.services.replay_report import OUTCOMES
    from stripectl.store import open_store
    from stripectl.store.inbox import iter_deliveries
    from stripectl.timeparse import parse_since
    from stripectl.webhooks.delivery import Delivery
    from stripectl.webhooks.envelope import envelope_line

    for o in outcome or []:
        if o not in OUTCOMES:
            raise UsageError(f"--outcome {o!r}: expected one of {', '.join(OUTCOMES)}")
    since_ts = parse_since(since) if since else None
    from stripectl.store.engine import is_url
    from stripectl.store.engine.postgres import redact_url as store_target

    if is_url(ctx.db):
        # Read only: a server mirror is not created by an export.
        store = open_store(ctx.db, dry_run=True, schema=ctx.schema)
        if store.path == ":memory:":
            store.close()
            raise UsageError(f"no mirror at {store_target(ctx.db)}", hint="pass --db or set STRIPECTL_DB")
    elif not Path(ctx.db).exists():
        raise UsageError(f"no mirror at {ctx.db}", hint="pass --db or set STRIPECTL_DB")
    else:
        store = open_store(ctx.db, schema=ctx.schema)
    written = unsigned = from_api = pruned = 0
    sink: IO[str]
    try:
        if output is not None:
            try:
                from stripectl.private_file import open_private

                sink = open_private(output)  # raw bodies: customer data
            except OSError as exc:
                raise UsageError(f"{output}: cannot write: {exc.strerror}") from None
        else:
            sink = sys.stdout
        try:
            for row in iter_deliveries(store, since=since_ts, outcomes=outcome, sources=source):
                if row.pruned:
                    pruned += 1
                    continue
                delivery = Delivery(
                    source=row.source or "",
                    body=row.body,
                    headers=row.headers,
                    received_at=row.received_at,
                )
                sink.write(envelope_line(delivery) + "\n")
                written += 1
                if delivery.signature is None:
                    unsigned += 1
                    from_api += row.source == "api"
        finally:
            if output is not None:
                sink.close()
            else:
                sink.flush()
    finally:
        store.close()
    if unsigned:
        parts = [f"{from_api} pulled from the Events API"] if from_api else []
        if unsigned - from_api:
            parts.append(f"{unsigned - from_api} received without a signature")
        ctx.note(
            f"warning: {unsigned} deliveries have no Stripe-Signature ({', '.join(parts)}): "
            "replay-webhook reads them back only with --unsigned, marked unverified"
        )
    if pruned:
        ctx.note(f"note: {pruned} deliveries not exported: their bodies were pruned (inbox prune --bodies)")
    if ctx.json and output is not None:
        ctx.emit_json(
            {"exported": written, "unsigned": unsigned, "from_api": from_api, "output": str(output)}
            | ({"pruned": pruned} if pruned else {})
        )
    else:
        ctx.note(f"exported {written} deliveries" + (f" to {output}" if output else ""))


PRUNE_HELP = f"""Drop raw webhook bodies and/or customers' contact details from the mirror.

Before a mirror leaves this machine (an Actions cache, a file shared in a bug
report): --bodies sets `events.body` to NULL (Stripe's raw bytes: customer
data, PaymentIntent / Checkout client secrets), all of them or those received
before --older-than; --personal-data clears customers.email / name and
checkout_sessions.customer_email / url. Every row, id, outcome and state
column stays, so re-runs still dedupe and reconcile still compares; a pruned
delivery can no longer be exported or re-verified. The file is then rebuilt
(secure_delete, VACUUM, WAL truncated): the bytes are gone, not hidden.
Safe to re-run.

Examples:

  stripectl inbox prune --bodies --personal-data      # before caching the mirror in CI

  stripectl inbox prune --bodies --older-than 30d     # keep a month of raw bodies

Exit 0 on success. {EXIT_CODES_HELP}
"""


@inbox_app.command("prune", help=PRUNE_HELP)
@guarded
def prune(
    tctx: typer.Context,
    bodies: Annotated[
        bool, typer.Option("--bodies", help="Drop the raw bodies of stored deliveries.")
    ] = False,
    personal_data: Annotated[
        bool,
        typer.Option("--personal-data", help="Clear customers' emails and names, checkout emails and URLs."),
    ] = False,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="With --bodies: only deliveries received before this age or time (30d, 2026-11-01).",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    from stripectl.timeparse import parse_since

    if not bodies and not personal_data:
        raise UsageError("nothing to prune", hint="pass --bodies and/or --personal-data")
    if older_than is not None and not bodies:
        raise UsageError("--older-than applies with --bodies")
    before = parse_since(older_than) if older_than is not None else None
    from stripectl.store import mirror_exists, open_store
    from stripectl.store.engine.postgres import redact_url
    from stripectl.store.prune import prune as run_prune

    if not mirror_exists(ctx.db, schema=ctx.schema):
        raise UsageError(f"no mirror at {redact_url(ctx.db)}", hint="pass --db or set STRIPECTL_DB")
    store = open_store(ctx.db, schema=ctx.schema)
    try:
        counts = run_prune(store, bodies=bodies, personal=personal_data, received_before=before)
    finally:
        store.close()
    data = {"bodies_pruned": counts.bodies, "personal_rows_cleared": counts.personal}
    if ctx.json:
        ctx.emit_json(data)
    else:
        ctx.out.print(
            f"pruned {counts.bodies} raw bodies, cleared contact details of {counts.personal} rows",
            highlight=False,
        )
