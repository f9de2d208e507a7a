"""`stripectl events pull`: catch up on missed events from the Events API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stripectl.cli.common import (
    EXIT_CODES_HELP,
    SUGGEST_COMMANDS,
    DbOpt,
    DebugOpt,
    JsonOpt,
    guarded,
    make_ctx,
    progress,
)
from stripectl.cli.stripe_opts import (
    ApiBaseOpt,
    ApiKeyOpt,
    ConcurrencyOpt,
    LiveOpt,
    MaxRpsOpt,
    RetriesOpt,
    TimeoutOpt,
    checked_settings,
)
from stripectl.errors import UsageError

events_app = typer.Typer(
    suggest_commands=SUGGEST_COMMANDS,
    name="events",
    help="Events API catch-up. Example: stripectl events pull --since 2h",
    no_args_is_help=True,
)

PULL_HELP = f"""Fetch events from Stripe's Events API and apply them to the mirror.

Events created at or after --since are fetched (Stripe keeps 30 days; an
older --since is clamped with a warning), applied oldest first exactly like
replay-webhook, and stored in the inbox as source `api` (trusted: fetched with
your key, so there is no signature). Event ids already in the inbox are
skipped. The newest event pulled becomes the cursor: run again without
--since to continue from it. A run with --type / --delivery-failed keeps its
own cursor. Pages are read in concurrent `created` windows paced by --max-rps
(default 20/s; 429s are backed off); the order they are applied in is the
same as one sequential listing's.

Examples:

  stripectl events pull --since 2h

  stripectl events pull --since 2026-11-01T00:00Z --type invoice.payment_failed --delivery-failed

  stripectl events pull            # continue from the cursor

  stripectl events pull --since 7d --max-rps 80 --concurrency 24   # raised limits

Exit 0 when nothing was rejected or anomalous, else 1. {EXIT_CODES_HELP}
"""


@events_app.command("pull", help=PULL_HELP)
@guarded
def pull(
    tctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            help="2h, 30m, 7d, 2026-11-01T00:00Z, unix seconds, or `cursor` "
            "(the default: continue from the last pull).",
            show_default=False,
        ),
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only this event type (repeatable, at most 20).", show_default=False),
    ] = None,
    delivery_failed: Annotated[
        bool,
        typer.Option(
            "--delivery-failed",
            help="Only events Stripe has not delivered successfully (delivery_success=false: "
            "failed or still pending).",
        ),
    ] = False,
    api_key: ApiKeyOpt = None,
    api_base: ApiBaseOpt = None,
    live: LiveOpt = False,
    timeout: TimeoutOpt = 30.0,
    network_retries: RetriesOpt = 2,
    max_rps: MaxRpsOpt = None,
    concurrency: ConcurrencyOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    from stripectl.services.events_pull import pull_events
    from stripectl.store import open_store
    from stripectl.timeparse import parse_since

    since_ts = None if since is None or since.strip().lower() == "cursor" else parse_since(since)
    from stripectl.store import mirror_exists

    if since_ts is None and not mirror_exists(ctx.db, schema=ctx.schema):
        # The same refusal pull_events gives an empty mirror, without creating one.
        raise UsageError(
            f"no events cursor: there is no mirror at {ctx.db} yet",
            hint="pass --since (e.g. --since 2h) for the first pull, or --db for another mirror",
        )
    from stripectl.services.connection import open_gateway

    settings = checked_settings(
        ctx, api_key, api_base, live, timeout, network_retries,
        max_rps=max_rps, concurrency=concurrency,
    )
    store = open_store(ctx.db, schema=ctx.schema)
    try:
        gateway = open_gateway(store, settings)
        with progress(ctx, "pulling events") as advance:
            report = pull_events(
                store,
                gateway,
                since=since_ts,
                types=type_ or None,
                delivery_failed=delivery_failed,
                progress=advance,
            )
    finally:
        store.close()
    for warning in report.warnings:
        ctx.note(f"warning: {warning}")
    if ctx.json:
        ctx.emit_json(report.to_json())
    else:
        _render(ctx, report.to_json())
    raise typer.Exit(0 if report.ok else 1)


def _render(ctx: Any, data: dict[str, Any]) -> None:
    from stripectl.timeparse import format_ts

    replay = data.get("replay") or {}
    summary = replay.get("summary") or {}
    cursor = data.get("cursor")
    ctx.out.print(
        f"pulled {data['fetched']} events since {format_ts(data['since'])}: "
        f"{data['new']} new, {data['duplicate']} already stored",
        highlight=False,
    )
    if summary:
        parts = ", ".join(f"{k} {v}" for k, v in summary.items() if k != "total" and v)
        ctx.out.print(f"outcomes: {parts or 'none'}", highlight=False)
    problems = [e for e in replay.get("events", []) if e.get("outcome") in ("rejected", "anomaly")]
    for e in problems[:20]:
        ctx.out.print(
            f"  {e['outcome']}: {e.get('event_id') or '-'} {e.get('type') or ''} ({e.get('reason')})",
            highlight=False,
            markup=False,
        )
    if len(problems) > 20:
        ctx.out.print(f"  ... and {len(problems) - 20} more (use --json)", highlight=False)
    if cursor:
        ctx.note(f"cursor: {format_ts(cursor.get('created'))} {cursor.get('id')}")
