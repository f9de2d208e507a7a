"""`stripectl replay-webhook`: verified replay of saved deliveries into the mirror."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stripectl.cli.common import (
    EXIT_CODES_HELP,
    DbOpt,
    DebugOpt,
    JsonOpt,
    guarded,
    make_ctx,
    progress,
)
from stripectl.cli.stripe_opts import GraceOpt, check_grace
from stripectl.errors import ConfigError, UsageError
from stripectl.json_text import JSONArraySpool
from stripectl.redact import redact

if TYPE_CHECKING:
    from stripectl.services.replay_report import EventResult
    from stripectl.webhooks.delivery import Delivery

HELP = f"""Verify saved Stripe webhook deliveries and apply them to the SQLite mirror.

PATH is an envelope file, a JSONL file of envelopes, a folder of either
(recursive), or a raw HTTP request dump. In a folder only .json, .jsonl,
.ndjson and .http files are read (--glob adds patterns); the others are
counted as skipped and never stored. A file named here is always read. Each delivery's signature is checked
over its exact raw body; freshness compares the signed timestamp with the
envelope's received_at. Events are deduplicated by id and applied newest-wins,
so the final mirror does not depend on delivery order or duplicates. Every
delivery, rejected ones included, is stored in the `events` table.

Outcomes: applied, duplicate, stale, anomaly, ignored (a type not mirrored,
a thin event, a test-mode event on a live mirror), rejected (with a reason,
and again on every re-run; the event id it claims is shown, unverified).

Example:

  stripectl replay-webhook examples/deliveries --secret whsec_stripectl_example_0000000000000000

Exit 0 when nothing was rejected or anomalous, else 1. {EXIT_CODES_HELP}
"""


def register(app: typer.Typer) -> None:
    app.command("replay-webhook", help=HELP, no_args_is_help=True)(replay_webhook)


@guarded
def replay_webhook(
    tctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Envelope files, JSONL files, folders, HTTP dumps.")],
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            envvar="STRIPE_WEBHOOK_SECRET",
            help="Endpoint secret whsec_...; repeat during a secret roll (any match passes). "
            "(env STRIPE_WEBHOOK_SECRET)",
            show_default=False,
        ),
    ] = None,
    tolerance: Annotated[
        int, typer.Option(help="Max seconds between the signature's t= and received_at.", min=0)
    ] = 300,
    grace: GraceOpt = "retry",
    unsigned: Annotated[
        bool,
        typer.Option("--unsigned", help="Accept bare event JSON without a signature (marked unverified)."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Verify and simulate; write nothing to the database.")
    ] = False,
    max_body_bytes: Annotated[
        int, typer.Option(help="Reject bodies larger than this (bytes).", min=1)
    ] = 1_048_576,
    events: Annotated[
        str, typer.Option(help="Events listed in the table: auto, all, problems, none.")
    ] = "auto",
    subscriptions: Annotated[
        str,
        typer.Option(
            help="Subscriptions listed in the table: auto (all up to 100, then at most 100 without "
            "access, in dunning or unverified), all, problems, none. --json lists every one."
        ),
    ] = "auto",
    forward_to: Annotated[
        str | None,
        typer.Option(
            help="POST each delivery, in event order, to this URL of your own handler "
            "(host:port/path means http://host:port/path, as in `stripe listen --forward-to`)."
        ),
    ] = None,
    sign_with: Annotated[
        str | None,
        typer.Option(help="With --forward-to: re-sign with this whsec_ and a fresh timestamp."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(help="With --forward-to: at most N deliveries per second.", min=0.001),
    ] = None,
    stop_on_error: Annotated[
        bool, typer.Option("--stop-on-error", help="With --forward-to: stop at the first non-2xx.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="With --forward-to: seconds to wait for each response.", min=0.1)
    ] = 10.0,
    jobs: Annotated[
        int, typer.Option(help="Worker processes verifying large inputs (0 = one per core).", min=0)
    ] = 0,
    glob: Annotated[
        list[str] | None,
        typer.Option(
            "--glob",
            help="In folders, also read files matching this pattern (repeatable), e.g. '*.txt'.",
            show_default=False,
        ),
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    secrets = [s.strip() for s in (secret or []) if s.strip()]
    if events not in ("auto", "all", "problems", "none"):
        raise UsageError(f"--events must be auto, all, problems or none, got {events!r}")
    if subscriptions not in ("auto", "all", "problems", "none"):
        raise UsageError(f"--subscriptions must be auto, all, problems or none, got {subscriptions!r}")
    grace = check_grace(grace)
    for s in secrets:
        if not s.startswith("whsec_"):
            ctx.note("warning: a --secret does not start with whsec_; is it an endpoint secret?")
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
    from stripectl.webhooks.envelope import select_files

    selection = select_files(paths, glob or ())
    skipped = _skipped_files(ctx, selection.skipped)
    paths = selection.files
    if forward_to is not None:
        forward_to = _with_scheme(ctx, forward_to)
        _forward(
            ctx,
            paths,
            forward_to,
            sign_with,
            rate,
            stop_on_error,
            unsigned,
            timeout,
            secrets,
            tolerance,
            max_body_bytes,
        )
        return
    if sign_with or rate or stop_on_error:
        raise UsageError("--sign-with, --rate and --stop-on-error need --forward-to")
    if not secrets and not unsigned:
        raise ConfigError(
            "no webhook secret",
            hint="pass --secret whsec_... or set STRIPE_WEBHOOK_SECRET",
        )

    from stripectl.services.parallel import default_jobs, inspecting
    from stripectl.services.replay import ReplayOptions, replay_inspected
    from stripectl.store import open_store

    options = ReplayOptions(
        secrets=secrets,
        tolerance=tolerance,
        grace=grace,
        dry_run=dry_run,
        max_body_bytes=max_body_bytes,
    )
    # Results leave the replay chunk by chunk: into a spool file for --json
    # (written out at the end, summary first), or as the table will list them.
    with ExitStack() as stack:
        spool = stack.enter_context(JSONArraySpool()) if ctx.json else None
        from stripectl.cli.replay_render import TableEvents, render_replay

        table_events = TableEvents(events)
        sink: Callable[[list[EventResult]], None] = (
            partial(_spool_events, spool) if spool is not None else table_events
        )
        with inspecting(
            paths,
            secrets=secrets,
            tolerance=tolerance,
            max_body_bytes=max_body_bytes,
            allow_unsigned=unsigned,
            jobs=jobs or default_jobs(),
        ) as inspected:
            store = open_store(ctx.db, dry_run=dry_run, schema=ctx.schema)
            try:
                with progress(ctx, "replaying", total=_total(ctx, paths)) as advance:
                    report = replay_inspected(
                        store,
                        inspected,
                        options,
                        progress=advance,
                        chunk_size=chunk_size,
                        event_sink=sink,
                        background_checkpoints=True,
                    )
            finally:
                store.close()
        if spool is not None:
            ctx.emit_json_stream(chain(report.json_parts(spool), [("skipped_files", skipped)]))
        else:
            report.events = table_events.kept
            render_replay(ctx, report.to_json(), events, subscriptions)
    raise typer.Exit(0 if report.ok else 1)


def _total(ctx: Any, paths: list[Path]) -> int | None:
    """The bar's total, counted only when a bar is shown (stripectl/cli/totals.py)."""
    if not ctx.interactive or ctx.json:
        return None
    from stripectl.cli.totals import expected_deliveries

    return expected_deliveries(paths)


_HOST_PORT_PATH = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?(?:[/?#].*)?$")


def _with_scheme(ctx: Any, url: str) -> str:
    """`localhost:4242/webhooks` (how Stripe CLI's --forward-to is typed) is
    http://localhost:4242/webhooks, as the Stripe CLI reads it; anything
    else is left for check_url to accept or refuse."""
    if "://" in url or not _HOST_PORT_PATH.match(url):
        return url
    ctx.note(f"note: --forward-to {url}: sending to http://{url}")
    return f"http://{url}"


def _skipped_files(ctx: Any, skipped: list[Path]) -> dict[str, Any]:
    """Say which files in the folders were not read (not delivery formats)."""
    from stripectl.webhooks.envelope import DELIVERY_SUFFIXES, source_name

    names = [source_name(p) for p in skipped]
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        ctx.note(
            f"skipped {len(names)} files in folders that are not deliveries "
            f"({', '.join(DELIVERY_SUFFIXES)}; --glob PATTERN reads others, a file named "
            f"on the command line is always read): {shown}"
        )
    return {"count": len(names), "examples": names[:10]}


def _spool_events(spool: JSONArraySpool, results: list[EventResult]) -> None:
    spool.write_items(redact(",\n  ".join([r.to_json_text() for r in results])))


def _forward(
    ctx: Any,
    paths: list[Path],
    url: str,
    sign_with: str | None,
    rate: float | None,
    stop_on_error: bool,
    unsigned: bool,
    timeout: float,
    secrets: list[str],
    tolerance: int,
    max_body_bytes: int,
) -> None:
    from stripectl.cli.forward_render import render_forward
    from stripectl.services.forward import forward
    from stripectl.webhooks.envelope import iter_deliveries

    if sign_with is not None and not sign_with.startswith("whsec_"):
        raise ConfigError("--sign-with must be a webhook secret (whsec_...)")
    deliveries = iter_deliveries(paths, allow_unsigned=unsigned)
    refused: list[dict[str, Any]] = []
    if sign_with is not None:
        # Re-signing vouches for the body: only deliveries that pass the
        # original check may get a fresh signature, or a forged or stale
        # capture would come out valid.
        if not secrets and not unsigned:
            raise ConfigError(
                "--sign-with re-signs deliveries: pass --secret so each is verified first",
                hint="or --unsigned to forward bare events you vouch for",
            )
        deliveries = _verified(deliveries, secrets, tolerance, max_body_bytes, refused)
    with progress(ctx, "forwarding", total=_total(ctx, paths)) as advance:
        report = forward(
            deliveries,
            url,
            sign_with=sign_with,
            rate=rate,
            stop_on_error=stop_on_error,
            timeout=timeout,
            progress=advance,
        )
    for r in refused:
        ctx.note(f"not forwarded: {r['source']}: {r['reason']} (re-signing needs a verified delivery)")
    data = {**report.to_json(), "not_forwarded": refused}
    if ctx.json:
        ctx.emit_json(data)
    else:
        render_forward(ctx, data)
    raise typer.Exit(0 if report.ok and not refused else 1)


def _verified(
    deliveries: Iterator[Delivery],
    secrets: list[str],
    tolerance: int,
    max_body_bytes: int,
    refused: list[dict[str, Any]],
) -> Iterator[Delivery]:
    from stripectl.webhooks.inspect import inspect

    for d in deliveries:
        ins = inspect(d, secrets=secrets, tolerance=tolerance, max_body_bytes=max_body_bytes)
        if ins.rejected:
            refused.append({"source": d.source, "event_id": ins.event_id, "reason": ins.reason})
        else:
            yield d
