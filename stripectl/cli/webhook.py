"""`stripectl webhook listen`: a local receiver that stores every delivery."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any

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
from stripectl.cli.line_sink import LineSink
from stripectl.errors import ConfigError, StoreError, UsageError

if TYPE_CHECKING:
    from stripectl.services.listener import DeliveryLine

webhook_app = typer.Typer(
    suggest_commands=SUGGEST_COMMANDS,
    name="webhook",
    help="Receive webhook deliveries. Example: stripectl webhook listen --secret whsec_...",
    no_args_is_help=True,
)

LISTEN_HELP = f"""Receive Stripe webhook deliveries on a local port and store them exactly.

Each POST to --path is verified over its raw body, stored in the inbox (the
`events` table), applied to the mirror and synced to disk BEFORE it is
answered: 200 stored (duplicates too), 400 bad/missing/expired signature
(recorded as rejected, within --unverified-budget), 413 body over --max-body,
500 not acknowledged, 503 busy (Stripe retries every non-2xx answer).
One line per delivery (--json: one JSON object per line) on stdout; lines
that stdout cannot take are dropped and counted, never waited for.
Ctrl-C (exit 130) or SIGTERM (exit 0) stops accepting, lets in-flight
deliveries finish for up to --drain-timeout seconds, then closes the database.

Examples:

  stripectl webhook listen --secret whsec_stripectl_example_0000

  stripe listen --forward-to localhost:4242/webhooks/stripe   # in another terminal

  stripectl webhook listen --port 0 --json > listen-log.jsonl

  stripectl inbox export --source listener -o captured.jsonl   # the envelopes

{EXIT_CODES_HELP}
"""


@webhook_app.command("listen", help=LISTEN_HELP)
@guarded
def listen(
    tctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (printed).", min=0, max=65535)] = 4242,
    path: Annotated[str, typer.Option(help="URL path that accepts deliveries.")] = "/webhooks/stripe",
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            envvar="STRIPE_WEBHOOK_SECRET",
            help="Endpoint secret whsec_...; repeat during a secret roll.",
            show_default=False,
        ),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest accepted body in bytes (larger: 413).", min=1)
    ] = 1_048_576,
    tolerance: Annotated[
        int, typer.Option(help="Max seconds between the signature's t= and arrival.", min=0)
    ] = 300,
    max_connections: Annotated[
        int, typer.Option("--max-connections", help="Open connections at most (more: 503).", min=1)
    ] = 512,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", help="Seconds from connect to complete headers.", min=0.1)
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option("--body-timeout", help="Seconds to receive a body (else 408).", min=0.1)
    ] = 10.0,
    drain_timeout: Annotated[
        float,
        typer.Option("--drain-timeout", help="Seconds in-flight deliveries get at shutdown.", min=0),
    ] = 10.0,
    unverified_budget: Annotated[
        int,
        typer.Option(
            "--unverified-budget",
            help="Bytes a minute that deliveries without a valid signature may store.",
            min=0,
        ),
    ] = 4 * 1_048_576,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    secrets = [s.strip() for s in (secret or []) if s.strip()]
    if not secrets:
        raise ConfigError("no webhook secret", hint="pass --secret whsec_... or set STRIPE_WEBHOOK_SECRET")
    if not path.startswith("/"):
        raise UsageError(f"--path must start with '/', got {path!r}")
    for s in secrets:
        if not s.startswith("whsec_"):
            ctx.note("warning: a --secret does not start with whsec_; is it an endpoint secret?")
    if host not in ("127.0.0.1", "localhost", "::1"):
        ctx.note(
            f"warning: listening on {host}, not loopback: anyone who can reach it can post "
            "(deliveries without a valid signature are answered 400 and recorded within "
            "--unverified-budget)"
        )
    from stripectl.services.listener import Listener, ListenerConfig

    config = ListenerConfig(
        db_path=ctx.db,
        schema=ctx.schema,
        secrets=secrets,
        host=host,
        port=port,
        path=path,
        max_body=max_body,
        tolerance=tolerance,
        max_connections=max_connections,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        drain_timeout=drain_timeout,
        unverified_per_minute=unverified_budget,
    )
    as_json = ctx.json
    from stripectl.style import colour_on

    colour = not as_json and colour_on(sys.stdout)
    out = LineSink(
        sys.stdout,
        dropped_line=lambda n: _dropped_line(n, as_json=as_json),
        render=lambda line: _format(line, as_json=as_json, colour=colour),
    )
    err = LineSink(sys.stderr)
    listener = Listener(config, out.put)
    stop = threading.Event()
    got: list[int] = []
    previous = _install_signals(stop, got, listener)
    try:
        listener.start()
        try:
            err.put(_note(
                f"listening on {listener.url} (db {ctx.db}; each answer after an fsync: "
                f"{listener.durability}); Ctrl-C to stop"
            ))
            if as_json:
                out.put(json.dumps({"listening": listener.url, "port": listener.port}))
            while not stop.wait(0.5):
                if listener.broken:
                    break
            err.put(_note(f"stopping: in-flight deliveries get up to {drain_timeout:g} s"))
        finally:
            stats = listener.stop()
            err.put(_note(_summary(stats, out.dropped)))
            # A stuck terminal must not hold the exit: give it a moment, then go.
            out.close(1.0)
            err.close(0.5)
    finally:
        _restore_signals(previous)
    if listener.broken and not got:
        raise StoreError(
            "the store process stopped: deliveries can no longer be stored",
            hint="see the lines above; restart the listener (Stripe retries what was not answered 2xx)",
        )
    if got and got[0] == signal.SIGINT:
        raise typer.Exit(130)  # interrupted, as in the README's table


def _note(message: str) -> str:
    from stripectl.printable import printable
    from stripectl.redact import redact

    return printable(redact(message))


def _summary(stats: Any, dropped: int) -> str:
    parts = ["stopped; database closed" if stats.store_closed else
             "stopped; the store was still busy (SQLite keeps whole transactions only)"]
    if stats.aborted_at_shutdown:
        parts.append(f"{stats.aborted_at_shutdown} requests cut at the drain deadline (not acknowledged)")
    if stats.refused_connections:
        parts.append(f"{stats.refused_connections} connections refused over --max-connections")
    if stats.timed_out_connections:
        parts.append(f"{stats.timed_out_connections} connections dropped for header/answer timeouts")
    if stats.unverified_not_recorded:
        parts.append(f"{stats.unverified_not_recorded} unverified deliveries not recorded (budget)")
    if dropped:
        parts.append(f"{dropped} log lines dropped (stdout was not keeping up)")
    return "; ".join(parts)


def _dropped_line(n: int, *, as_json: bool) -> str:
    if as_json:
        return json.dumps({"dropped_lines": n})
    return f"-- {n} log lines dropped: stdout was not keeping up --"


def _install_signals(stop: threading.Event, got: list[int], listener: Any) -> dict[int, Any]:
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous  # signals can only be handled on the main thread

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            listener.hurry()  # a second Ctrl-C: end the drain now
        got.append(signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)


def _format(line: DeliveryLine, *, as_json: bool, colour: bool = False) -> str:
    from stripectl.redact import redact

    if as_json:
        return redact(json.dumps(line.to_json()))
    from stripectl.timeparse import format_ts

    what = line.outcome or "-"
    if line.reason:
        what += f" ({line.reason})"
    if line.error:
        what += f" error: {line.error}"
    from stripectl.printable import printable

    text = printable(
        redact(
            f"{format_ts(line.received_at)} {line.status} {line.event_id or '-'} "
            f"{line.type or '-'} {what} {line.latency_ms:.0f}ms"
        )
    )
    if colour and line.outcome:
        # After printable(): the escape codes are ours, the rest was made safe.
        from stripectl.style import ansi

        head, sep, tail = text.partition(f" {line.outcome}")
        text = head + (f" {ansi(line.outcome)}" if sep else "") + tail
    return text


# `webhook probe` and `webhook audit` (issue 16) live in their own module.
from stripectl.cli.webhook_checks import register as _register_checks  # noqa: E402

_register_checks(webhook_app)
