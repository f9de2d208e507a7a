"""`stripectl sync`: pull subscriptions (or events) from Stripe into the mirror."""

from __future__ import annotations

from typing import Annotated

import typer

from stripectl.cli.common import (
    EXIT_CODES_HELP,
    Ctx,
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

HELP = f"""Pull every subscription from Stripe into the SQLite mirror.

A full sync lists all subscriptions (status=all, 100 per request, in
concurrent `created` windows paced by --max-rps, default 20/s) and upserts
each as a snapshot taken when the listing started: a mirror row that is newer
(a webhook applied while the listing ran) is kept, never rolled back. Rows
that did not change only get their snapshot time moved forward.

--since pulls events from the Events API instead (like `stripectl events
pull`): `--since cursor` continues from the cursor the last pull stored,
`--since 6h` / an ISO time / unix seconds starts there. Without a cursor, or
older than the Events API's 30-day retention, it falls back to a full sync
and says so.

Examples:

  stripectl sync

  stripectl sync --since cursor     # nightly: incremental from the stored cursor

  stripectl sync --json --db mirror.db

  stripectl sync --max-rps 80 --concurrency 24   # live account with raised limits

Exit 0 on success (1 if an incremental sync rejected events). {EXIT_CODES_HELP}
"""


def register(app: typer.Typer) -> None:
    app.command("sync", help=HELP)(sync)


@guarded
def sync(
    tctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            help="Incremental from the Events API: `cursor`, or 2h, 7d, 2026-11-01T00:00Z, unix seconds.",
            show_default=False,
        ),
    ] = None,
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
    from stripectl.services.sync import full_sync, incremental_sync
    from stripectl.store import open_store
    from stripectl.timeparse import parse_since

    since_ts = None
    if since is not None and since.strip().lower() != "cursor":
        since_ts = parse_since(since)
    from stripectl.services.connection import open_gateway

    settings = checked_settings(
        ctx, api_key, api_base, live, timeout, network_retries,
        max_rps=max_rps, concurrency=concurrency,
    )
    store = open_store(ctx.db, schema=ctx.schema)
    try:
        gateway = open_gateway(store, settings)
        with progress(ctx, "syncing subscriptions") as advance:
            if since is None:
                report = full_sync(store, gateway, progress=advance)
            else:
                report = incremental_sync(store, gateway, since=since_ts, progress=advance)
    finally:
        store.close()
    for note in report.notes:
        ctx.note(f"note: {note}")
    if ctx.json:
        ctx.emit_json(report.to_json())
    else:
        _print(ctx, report.to_json())
    raise typer.Exit(0 if report.ok else 1)


def _print(ctx: Ctx, data: dict[str, object]) -> None:
    from stripectl.timeparse import format_ts

    s = data["summary"]
    assert isinstance(s, dict)
    if data["mode"] == "full":
        started = data["listing_started_at"]
        ctx.out.print(
            f"synced {s['total']} subscriptions (listing of "
            f"{format_ts(started if isinstance(started, int) else None)}): "
            f"created {s['created']}, updated {s['updated']}, unchanged {s['unchanged']}, "
            f"skipped (newer locally) {s['skipped_newer']}",
            highlight=False,
        )
    events = data.get("events")
    if isinstance(events, dict):
        replay = events.get("replay") or {}
        outcomes = ", ".join(f"{k} {v}" for k, v in (replay.get("summary") or {}).items() if v)
        ctx.out.print(
            f"events since {format_ts(events.get('since'))}: {events.get('fetched')} fetched, "
            f"{events.get('new')} new ({outcomes or 'nothing applied'})",
            highlight=False,
        )
