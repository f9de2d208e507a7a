"""`stripectl access`: the entitlement decision for one user or customer, and why."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from stripectl.cli.common import EXIT_CODES_HELP, Ctx, DbOpt, DebugOpt, JsonOpt, guarded, make_ctx
from stripectl.cli.stripe_opts import (
    ApiBaseOpt,
    ApiKeyOpt,
    ConcurrencyOpt,
    GraceOpt,
    LiveOpt,
    MaxRpsOpt,
    RetriesOpt,
    TimeoutOpt,
    check_grace,
    checked_settings,
)

HELP = f"""May USER_OR_CUSTOMER be provisioned right now, and why.

USER_OR_CUSTOMER is your user id (subscription metadata user_id, or a
Checkout Session's user / client_reference_id) or a Stripe customer id
(cus_...). By default the subscriptions are fetched live from Stripe, the
mirror is updated if they differ (newest wins: a newer webhook is kept), and
the decision is made from the result. past_due follows --grace: `retry`
grants while the latest invoice has a payment retry scheduled.

Many customers / subscriptions are fetched concurrently, paced by --max-rps.

--offline answers from the mirror only and says how old its data is;
--max-age refuses (exit 1) an offline grant resting on older data.

Examples:

  stripectl access user_42

  stripectl access cus_RfX2 --grace 7d --json

  stripectl access user_42 --offline --max-age 1h

Exit 0 access granted, 1 not granted. {EXIT_CODES_HELP}
"""

_AGE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(app: typer.Typer) -> None:
    app.command("access", help=HELP, no_args_is_help=True)(access)


def _max_age(value: str | None) -> int | None:
    from stripectl.errors import UsageError

    if value is None:
        return None
    m = _AGE.match(value.lower())
    if not m:
        raise UsageError(f"--max-age {value!r}: expected a duration such as 90s, 30m, 2h, 1d")
    return int(m.group(1)) * _UNIT[m.group(2)]


@guarded
def access(
    tctx: typer.Context,
    subject: Annotated[str, typer.Argument(metavar="USER_OR_CUSTOMER", help="user id or cus_...")],
    offline: Annotated[
        bool, typer.Option("--offline", help="Answer from the mirror only (no Stripe call).")
    ] = False,
    max_age: Annotated[
        str | None,
        typer.Option(
            help="With --offline: refuse to grant on data older than this (e.g. 1h).", show_default=False
        ),
    ] = None,
    grace: GraceOpt = "retry",
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
    from stripectl.errors import UsageError
    from stripectl.services.access import check_access
    from stripectl.store import open_store

    subject = subject.strip()
    if not subject:
        raise UsageError("USER_OR_CUSTOMER is empty")
    grace = check_grace(grace)
    age_limit = _max_age(max_age)
    if age_limit is not None and not offline:
        raise UsageError("--max-age applies with --offline (online answers are fresh)")
    from stripectl.services.connection import open_gateway

    settings = None if offline else checked_settings(
        ctx, api_key, api_base, live, timeout, network_retries,
        max_rps=max_rps, concurrency=concurrency,
    )
    store = open_store(ctx.db, schema=ctx.schema)
    try:
        gateway = None if settings is None else open_gateway(store, settings)
        report = check_access(store, gateway, subject, grace=grace, max_age=age_limit)
    finally:
        store.close()
    for note in report.notes:
        ctx.note(f"note: {note}")
    if ctx.json:
        ctx.emit_json(report.to_json())
    else:
        _print(ctx, report.to_json())
    raise typer.Exit(report.exit_code)


def _print(ctx: Ctx, data: dict[str, object]) -> None:
    from rich.text import Text

    from stripectl.render import Column, Rows, rich_table, ts
    from stripectl.style import styled

    verdict = "GRANTED" if data["granted"] else "DENIED"
    kind = "stale" if data.get("stale") else verdict
    ctx.out.print(Text.assemble(styled(verdict, kind), f": {data['subject']}: {data['why']}"))
    age = data.get("age_seconds")
    as_of = data.get("data_as_of")
    if data["mode"] == "offline":
        ctx.out.print(
            f"from the mirror only: data as of {ts(as_of)}"
            + (f" ({_human(age)} old)" if isinstance(age, int) else ""),
            highlight=False,
        )
    else:
        ctx.out.print(f"checked live with Stripe at {ts(data['checked_at'])}", highlight=False)
    subs = data.get("subscriptions")
    if isinstance(subs, list) and subs:
        ctx.out.print(
            rich_table(
                Rows(
                    title="",
                    columns=[
                        Column("subscription", "subscription"),
                        Column("status", "status"),
                        Column("granted", "access", lambda v, r: "granted" if v else "denied"),
                        Column("why", "why"),
                        Column("as_of", "data as of", lambda v, r: ts(v)),
                        Column("source", "from"),
                        Column("refresh", "mirror"),
                    ],
                    rows=subs,
                )
            )
        )


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
