"""`stripectl webhook probe` and `stripectl webhook audit`: check the user's own integration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from stripectl.cli.common import EXIT_CODES_HELP, Ctx, DbOpt, DebugOpt, JsonOpt, guarded, make_ctx
from stripectl.cli.stripe_opts import (
    ApiBaseOpt,
    ApiKeyOpt,
    LiveOpt,
    RetriesOpt,
    TimeoutOpt,
    checked_settings,
)

if TYPE_CHECKING:
    from stripectl.render import Rows
    from stripectl.services.audit import AuditReport
    from stripectl.services.probe import ProbeReport

FORMATS = ("table", "json", "markdown", "junit")

PROBE_HELP = f"""Send a bounded set of signed and forged deliveries to YOUR webhook handler and grade it.

Must accept (2xx): a valid signed delivery; the same pretty-printed with
non-ASCII text (fails when middleware parses and re-serialises the body
before verifying); two v1 signatures of which one is right (a secret roll);
a re-sent duplicate; two concurrent copies of one event; an unknown type.

Must refuse (4xx): no Stripe-Signature; a garbled header; a v0-only header;
a tampered body; another secret; a timestamp older than --tolerance. A 2xx to
any of these is CRITICAL: your endpoint accepts forged events.

Should: answer within --budget seconds (Stripe counts slow answers as failed
and retries them), never redirect (Stripe treats 3xx as a failure), never
echo the secret or the signature in an error body.

The VALID deliveries reach your handler's business logic. They are
recognisable: ids evt_stripectl_probe_..., type balance.available (--type),
a `stripectl_probe` note in data.object. Use a local or staging handler in
test mode. Only loopback URLs are accepted unless --allow-remote is given.

Examples:

  stripectl webhook probe http://127.0.0.1:8000/webhooks/stripe --secret whsec_stripectl_example_0000

  stripectl webhook probe http://localhost:3000/api/stripe --format junit > probe.xml

  stripectl webhook probe https://staging.example.com/hooks --allow-remote --budget 2 --json

Exit 0 every must-check passed (should-findings are printed, not fatal); 1 a
must-check failed; 5 the handler could not be reached. {EXIT_CODES_HELP}
"""

AUDIT_HELP = f"""Check the account's webhook endpoints (GET /v1/webhook_endpoints) against the mirror's needs.

Per endpoint: event types stripectl's state machine handles that it does not
subscribe to (a missing customer.subscription.deleted means users keep access
after cancellation); an api_version other than the one stripectl's SDK pins,
or none (the account default); a live-mode URL that is not https; disabled;
subscribed to '*'. Across endpoints: mixed API versions. A read-only
restricted key (rk_test_...) is enough.

Examples:

  stripectl webhook audit

  stripectl webhook audit --format markdown >> "$GITHUB_STEP_SUMMARY"

  stripectl webhook audit --endpoint we_123 --json

Exit 0 no findings; 1 findings. {EXIT_CODES_HELP}
"""

FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help=f"Output format: {', '.join(FORMATS)}.")
]


def register(app: typer.Typer) -> None:
    # The help names probe_cases.DEFAULT_TYPE literally: importing it here would
    # load hmac/secrets on every `stripectl --help` (a test keeps them equal).
    app.command("probe", help=PROBE_HELP)(probe)
    app.command("audit", help=AUDIT_HELP)(audit)


def _format(ctx: Ctx, fmt: str) -> str:
    from stripectl.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if ctx.json and fmt not in ("table", "json"):  # table: the default, maybe not typed
        raise UsageError(
            f"--json and --format {fmt} ask for two formats", hint="--json is --format json: pass one"
        )
    return "json" if ctx.json else fmt


@guarded
def probe(
    tctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Your handler's URL, e.g. http://127.0.0.1:8000/webhooks.")],
    secret: Annotated[
        str | None,
        typer.Option("--secret", envvar="STRIPE_WEBHOOK_SECRET",
                     help="The endpoint's signing secret whsec_... your handler verifies with.",
                     show_default=False),
    ] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Event type of the valid deliveries.",
                                 show_default=False)
    ] = None,
    budget: Annotated[
        float, typer.Option("--budget", help="Seconds an answer may take (should-check).", min=0.001)
    ] = 5.0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before a request is given up.", min=0.1)
    ] = 15.0,
    tolerance: Annotated[
        int, typer.Option(help="The handler's timestamp tolerance in seconds (SDK default 300).",
                          min=1)
    ] = 300,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a URL that is not loopback.")
    ] = False,
    fmt: FormatOpt = "table",
    db: DbOpt = None,  # a global option: accepted here too (these commands keep no mirror)
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    fmt = _format(ctx, fmt)
    from stripectl.errors import ConfigError
    from stripectl.gateway.webhook_endpoints import sdk_api_version
    from stripectl.services.probe import ProbeConfig
    from stripectl.services.probe import probe as run
    from stripectl.services.probe_cases import DEFAULT_TYPE

    if not secret or not secret.strip():
        raise ConfigError("no webhook secret",
                          hint="pass --secret whsec_... (the secret your handler verifies with)")
    config = ProbeConfig(
        url=url,
        secret=secret.strip(),
        event_type=(event_type or DEFAULT_TYPE).strip(),
        budget=budget,
        timeout=timeout,
        tolerance=tolerance,
        allow_remote=allow_remote,
        api_version=sdk_api_version(),
    )
    report = run(config)
    _print_probe(ctx, report, fmt)
    raise typer.Exit(0 if report.ok else 1)


def _probe_rows(report: ProbeReport) -> Rows:
    from stripectl.render import Column, Rows

    def latency(value: object, row: dict[str, object]) -> str:
        return "-" if value is None else f"{float(str(value)):.0f} ms"

    def status(value: object, row: dict[str, object]) -> str:
        return str(value) if value is not None else str(row.get("error") or "-")

    return Rows(
        title=f"webhook probe {report.to_json()['url']}",
        columns=[
            Column("check", "check"),
            Column("expect", "expect"),
            Column("status", "status", status),
            Column("latency_ms", "latency", latency),
            Column("result", "result", lambda v, r: "PASS" if v == "pass" else "FAIL"),
            Column("findings", "findings", lambda v, r: "; ".join(v) if v else ""),
        ],
        rows=[r.to_json() for r in report.results],
        summary=report.summary,
        key="checks",
    )


def _print_probe(ctx: Ctx, report: ProbeReport, fmt: str) -> None:
    import sys

    from stripectl import render

    data = report.to_json()
    if fmt == "json":
        ctx.emit_json(data)
        return
    rows = _probe_rows(report)
    s = report.summary
    headline = (f"{s['passed']}/{s['checks']} checks passed, {s['failed']} failed, "
                f"{s['should']} should-finding(s)")
    if fmt == "markdown":
        intro = [headline]
        if report.critical:
            intro.insert(0, "CRITICAL: your endpoint accepts forged events")
        sys.stdout.write(render.to_markdown(rows, heading="Webhook probe", intro=intro))
        return
    if fmt == "junit":
        failing = render.Rows(rows.title, rows.columns,
                              [r for r in rows.rows if r["result"] == "fail"])
        sys.stdout.write(render.to_junit(
            failing,
            suite="stripectl webhook probe",
            case_key="check",
            message=lambda group: "; ".join(group[0]["findings"]) or "failed",
            passed=[r["check"] for r in rows.rows if r["result"] == "pass"],
        ))
        return
    ctx.out.print(render.rich_table(rows))
    for f in report.findings:
        if f["severity"] == "should":
            ctx.out.print(f"{f['severity']}: {f['check']}: {f['message']}", markup=False,
                          highlight=False)
    if report.critical:
        ctx.out.print("CRITICAL: your endpoint accepts forged events", markup=False,
                      highlight=False)
    ctx.out.print(headline, markup=False, highlight=False)


@guarded
def audit(
    tctx: typer.Context,
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", help="Audit only this endpoint id we_... (repeatable).",
                     show_default=False),
    ] = None,
    fmt: FormatOpt = "table",
    api_key: ApiKeyOpt = None,
    api_base: ApiBaseOpt = None,
    live: LiveOpt = False,
    timeout: TimeoutOpt = 30.0,
    network_retries: RetriesOpt = 2,
    db: DbOpt = None,  # a global option: accepted here too (these commands keep no mirror)
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    fmt = _format(ctx, fmt)
    from stripectl.gateway.client import connect
    from stripectl.gateway.webhook_endpoints import iter_webhook_endpoints, sdk_api_version
    from stripectl.services.audit import audit as run

    gateway = connect(checked_settings(ctx, api_key, api_base, live, timeout, network_retries))
    report = run(iter_webhook_endpoints(gateway), sdk_api_version=sdk_api_version(),
                 only=endpoint or ())
    _print_audit(ctx, report, fmt)
    raise typer.Exit(0 if report.ok else 1)


def _print_audit(ctx: Ctx, report: AuditReport, fmt: str) -> None:
    import sys

    from stripectl import render

    if fmt == "json":
        ctx.emit_json(report.to_json())
        return
    rows = render.Rows(
        title=f"webhook endpoints (stripectl's SDK renders {report.sdk_api_version})",
        columns=[
            render.Column("endpoint", "endpoint"),
            render.Column("url", "url"),
            render.Column("kind", "finding"),
            render.Column("detail", "detail", lambda v, r: str(v) + (
                f": {', '.join(r['missing'])}" if r.get("missing") else "")),
        ],
        rows=report.findings,
        summary=report.summary,
        key="findings",
    )
    headline = f"{len(report.endpoints)} endpoint(s), {len(report.findings)} finding(s)"
    if fmt == "markdown":
        sys.stdout.write(render.to_markdown(rows, heading="Webhook endpoint audit",
                                            intro=[headline], empty="No findings."))
        return
    if fmt == "junit":
        checked = [str(ep["id"]) for ep in report.endpoints]
        sys.stdout.write(render.to_junit(
            rows, suite="stripectl webhook audit", case_key="endpoint",
            message=lambda group: "; ".join(str(r["kind"]) for r in group), passed=checked,
        ))
        return
    if report.findings:
        ctx.out.print(render.rich_table(rows))
    ctx.out.print(headline, markup=False, highlight=False)
