"""`stripectl reconcile`: drift between the mirror and live Stripe, for people and CI."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from stripectl.cli.completion import choices
from stripectl.cli.outputs import check_writable, exit_code_of
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

if TYPE_CHECKING:
    from stripectl.render import Rows
    from stripectl.services.reconcile import ReconcileReport

FORMATS = ("table", "json", "jsonl", "markdown", "junit")
KINDS_TEXT = (
    "missing_local, missing_remote, status, access, price, quantity, current_period_end, "
    "cancel_at_period_end, customer, metadata, livemode"
)

HELP = f"""Compare the mirror with a fresh listing of every Stripe subscription.

Drift kinds: {KINDS_TEXT}. `access` means the entitlement decision differs
(--grace policy). A mirror row newer than the listing (a webhook applied while
it ran) is skipped, not reported. Requests: one per 100 subscriptions plus
about one per `created` window, paced by --max-rps (default 20/s; 429s are
backed off) with --concurrency windows in flight. Never uses the Search API
(it lags). Every run is recorded; --history shows the trend.

--fix plans repairs of the MIRROR to Stripe's state (it never writes to
Stripe) and applies them with --yes. A row missing in Stripe's listing is
retrieved by id first and deleted only if Stripe does not know it.

Formats: table (default), json, jsonl, markdown (PR comment / CI step
summary), junit (one test case per subscription; drift = failure).
--json is --format json (with another --format it is refused). --output
writes the --format output to a file; --report FORMAT:FILE writes an extra
format from the same run (repeatable). Every output path is checked before
the first request; the exit code recorded for the run (--history) is the
one the process returns.

Examples:

  stripectl reconcile

  stripectl reconcile --format markdown --report junit:drift.xml >> "$GITHUB_STEP_SUMMARY"

  stripectl reconcile --ignore metadata --ignore current_period_end

  stripectl reconcile --fix            # show the plan
  stripectl reconcile --fix --yes      # apply it to the mirror

  stripectl reconcile --history

  stripectl reconcile --max-rps 10   # leave more of the rate limit to production

Exit 0 no drift, 1 drift found (also when --fix repaired it). {EXIT_CODES_HELP}
"""


def register(app: typer.Typer) -> None:
    app.command("reconcile", help=HELP)(reconcile)


def _parse_reports(values: list[str]) -> list[tuple[str, Path]]:
    from stripectl.errors import UsageError

    out: list[tuple[str, Path]] = []
    for value in values:
        fmt, sep, path = value.partition(":")
        if not sep or fmt not in FORMATS or not path:
            raise UsageError(
                f"--report {value!r}: expected FORMAT:FILE", hint=f"formats: {', '.join(FORMATS)}"
            )
        out.append((fmt, Path(path)))
    return out


@guarded
def reconcile(
    tctx: typer.Context,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help=f"Output format: {', '.join(FORMATS)} (default table).",
            show_default=False, autocompletion=choices(*FORMATS),
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the output to FILE instead of stdout.", show_default=False
        ),
    ] = None,
    report_to: Annotated[
        list[str] | None,
        typer.Option(
            "--report", help="Also write FORMAT:FILE (repeatable), e.g. junit:drift.xml.", show_default=False
        ),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore", help="Drift kind not to report or gate on (repeatable).", show_default=False
        ),
    ] = None,
    grace: GraceOpt = "retry",
    fix: Annotated[bool, typer.Option("--fix", help="Plan repairs of the mirror.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="With --fix: apply the plan.")] = False,
    history: Annotated[
        bool, typer.Option("--history", help="Show recent runs and the trend (no Stripe calls).")
    ] = False,
    limit: Annotated[int, typer.Option(help="Runs shown by --history.", min=1)] = 20,
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
    from stripectl.services.drift import check_kinds
    from stripectl.store import open_store

    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if ctx.json and fmt not in (None, "json"):
        raise UsageError(
            f"--json and --format {fmt} ask for two formats", hint="--json is --format json: pass one"
        )
    fmt = "json" if ctx.json else fmt or "table"
    if yes and not fix:
        raise UsageError("--yes only applies with --fix")
    if history and fmt == "junit":
        raise UsageError("--history supports table, json, jsonl and markdown")
    reports = _parse_reports(report_to or [])
    check_writable([*([output] if output is not None else []), *(p for _, p in reports)])
    ignored = check_kinds(ignore or [])
    grace = check_grace(grace)
    settings = None if history else checked_settings(
        ctx, api_key, api_base, live, timeout, network_retries,
        max_rps=max_rps, concurrency=concurrency,
    )
    from stripectl.services.connection import open_gateway

    store = open_store(ctx.db, schema=ctx.schema)
    try:
        if history:
            _history(ctx, store, fmt, limit)
            return
        from stripectl.services.reconcile import ReconcileOptions, set_exit_code
        from stripectl.services.reconcile import reconcile as run

        assert settings is not None
        gateway = open_gateway(store, settings)
        wants_junit = fmt == "junit" or any(f == "junit" for f, _ in reports)
        options = ReconcileOptions(
            grace=grace, ignore=ignored, fix=fix, apply=fix and yes, collect_in_sync=wants_junit
        )
        with progress(ctx, "comparing subscriptions") as advance:
            result = run(store, gateway, options, progress=advance)
        code = result.exit_code
        try:
            _emit(ctx, result, fmt, output)
            for rfmt, path in reports:
                _write(path, _text(result, rfmt))
            _notes(ctx, result)
        except BaseException as exc:
            code = exit_code_of(exc)
            raise
        finally:
            if code != result.exit_code and result.run_id is not None:
                with contextlib.suppress(Exception):  # never hide the error being raised
                    set_exit_code(store, result.run_id, code)
    finally:
        store.close()
    raise typer.Exit(result.exit_code)


# ---- rendering ---------------------------------------------------------------


def _value(value: Any, row: dict[str, Any]) -> str:
    from stripectl.render import cell, ts

    if row.get("kind") == "current_period_end":
        return ts(value)
    if row.get("kind") == "access" and isinstance(value, dict):
        return f"{'granted' if value.get('granted') else 'denied'} ({value.get('why')})"
    if value is None and row.get("kind", "").startswith("missing_"):
        return "(absent)"
    return cell(value)


def drift_rows(result: ReconcileReport) -> Rows:
    from stripectl.render import Column, Rows

    data = result.to_json()
    return Rows(
        title="Subscription drift: mirror vs Stripe",
        columns=[
            Column("subscription", "subscription"),
            Column("kind", "kind"),
            Column("local", "mirror", _value),
            Column("remote", "Stripe", _value),
        ],
        rows=data["drift"],
        summary=data["summary"],
        key="drift",
        extra={k: v for k, v in data.items() if k not in ("summary", "drift")},
    )


def _summary_line(result: ReconcileReport) -> str:
    s = result.summary()
    kinds = ", ".join(f"{k} {n}" for k, n in s["by_kind"].items())
    head = f"{s['drift']} drift findings in {s['drifted_subscriptions']} subscriptions" + (
        f" ({kinds})" if kinds else ""
    )
    return (
        f"{head}; compared {s['compared']}, mirror {s['local']}, Stripe {s['remote']}, "
        f"skipped (newer locally) {s['skipped_newer_locally']}, requests {s['requests']}"
    )


def _junit_message(group: list[dict[str, Any]]) -> str:
    return "; ".join(f"{r['kind']}: {_value(r['local'], r)} -> {_value(r['remote'], r)}" for r in group)


def _text(result: ReconcileReport, fmt: str) -> str:
    from stripectl.render import render

    rows = drift_rows(result)
    if fmt == "table":
        from io import StringIO

        from rich.console import Console

        buf = StringIO()
        console = Console(file=buf, width=160, color_system=None)
        console.print(rows_table(result))
        console.print(_summary_line(result), highlight=False)
        return buf.getvalue()
    intro = [_summary_line(result)]
    if result.skipped_newer:
        intro.append(f"skipped: newer locally: {len(result.skipped_newer)}")
    if result.ignored:
        intro.append("ignored: " + ", ".join(f"{k} {n}" for k, n in result.ignored.items()))
    return render(
        rows,
        fmt,
        markdown={
            "heading": "Stripe subscription drift",
            "intro": intro,
            "empty": f"No drift: the mirror matches Stripe ({result.compared} compared).",
        },
        junit={
            "suite": "stripectl.reconcile",
            "case_key": "subscription",
            "message": _junit_message,
            "passed": result.in_sync_ids,
            "skipped": {s: "newer locally" for s in result.skipped_newer},
            "timestamp": result.started_at,
        },
    )


def rows_table(result: ReconcileReport) -> Any:
    from stripectl.render import rich_table

    return rich_table(drift_rows(result))


def _write(path: Path, text: str) -> None:
    from stripectl.errors import UsageError

    try:
        from stripectl.private_file import write_private

        write_private(path, text)  # reports name customers: owner-only
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _emit(ctx: Ctx, result: ReconcileReport, fmt: str, output: Path | None) -> None:
    if output is not None:
        _write(output, _text(result, fmt))
        ctx.note(f"wrote {fmt} report to {output}")
        return
    if fmt == "table":
        if result.findings:
            ctx.out.print(rows_table(result))
        ctx.out.print(_summary_line(result), highlight=False)
        if result.fix_plan:
            ctx.out.print(_plan_table(result))
        return
    import sys

    sys.stdout.write(_text(result, fmt))


def _plan_table(result: ReconcileReport) -> Any:
    from stripectl.render import Column, Rows, rich_table

    return rich_table(
        Rows(
            title="Fix plan (mirror only; Stripe is never written)",
            columns=[
                Column("subscription", "subscription"),
                Column("action", "action"),
                Column("kinds", "drift"),
                Column("outcome", "outcome"),
            ],
            rows=[a.to_json() for a in result.fix_plan or []],
        )
    )


def _notes(ctx: Ctx, result: ReconcileReport) -> None:
    if result.skipped_newer:
        shown = ", ".join(result.skipped_newer[:10])
        extra = len(result.skipped_newer) - 10
        more = f" and {extra} more" if extra > 0 else ""
        ctx.note(f"skipped: newer locally: {shown}{more}")
    if result.fix_plan is not None:
        if not result.fix_plan:
            ctx.note("fix: nothing to repair")
        elif result.fix_applied:
            ctx.note(f"fix: repaired {result.fixed} of {len(result.fix_plan)} mirror rows")
        else:
            ctx.note(
                f"fix: {len(result.fix_plan)} mirror rows would change; re-run with --fix --yes to apply"
            )


def _history(ctx: Ctx, store: Any, fmt: str, limit: int) -> None:
    from stripectl.render import Column, Rows, cell, render, rich_table, ts
    from stripectl.services.reconcile import history

    runs = history(store, limit)

    def delta(value: Any, row: dict[str, Any]) -> str:
        return "-" if value is None else (f"+{value}" if value > 0 else str(value))

    rows = Rows(
        title="Reconcile runs (newest first)",
        columns=[
            Column("id", "run"),
            Column("started_at", "started", lambda v, r: ts(v)),
            Column("remote_count", "Stripe"),
            Column("compared", "compared"),
            Column("drift_count", "drift"),
            Column("delta", "change", delta),
            Column("counts", "by kind", lambda v, r: cell(v) if v else "-"),
            Column("fixed", "fixed"),
            Column("exit_code", "exit"),
        ],
        rows=runs,
        summary={"runs": len(runs)},
        key="runs",
    )
    if fmt == "table":
        ctx.out.print(rich_table(rows))
    else:
        import sys

        sys.stdout.write(render(rows, fmt))
