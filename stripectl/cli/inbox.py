"""`stripectl inbox export`: stored deliveries back out as envelope JSONL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Annotated

import typer

from stripectl.cli.common import EXIT_CODES_HELP, DbOpt, DebugOpt, JsonOpt, guarded, make_ctx
from stripectl.errors import UsageError

inbox_app = typer.Typer(
    name="inbox",
    help="The stored deliveries (events table). Example: stripectl inbox export --output d.jsonl",
    no_args_is_help=True,
)

EXPORT_HELP = f"""Write stored deliveries as envelope JSONL that replay-webhook reads back.

One line per delivery: {{"received_at": ..., "headers": {{...}}, "body": "<raw body>"}},
the body exactly as received (so its signature still verifies), in arrival
order. Deliveries pulled from the Events API (source `api`) have no
signature: replay-webhook rejects them; select captures with --source listener.

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
    written = unsigned = 0
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
        finally:
            if output is not None:
                sink.close()
            else:
                sink.flush()
    finally:
        store.close()
    if unsigned:
        ctx.note(
            f"warning: {unsigned} deliveries have no Stripe-Signature (pulled from the Events "
            "API); replay-webhook will reject them as no_signature"
        )
    if ctx.json and output is not None:
        ctx.emit_json({"exported": written, "unsigned": unsigned, "output": str(output)})
    else:
        ctx.note(f"exported {written} deliveries" + (f" to {output}" if output else ""))
